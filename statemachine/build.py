#!/usr/bin/env python3
"""Builds the state machine definitions statemachine/<name>.asl.json from statemachine/src/.

    python3 statemachine/build.py            # (re)writes the definitions that changed
    python3 statemachine/build.py --check    # exit 1, naming each definition that is out of date

The fragment format is described in statemachine/src/README.md. Python 3.11 standard
library only. The outputs are committed (the template and the tests read them), so run
this after every edit under src/; tests/infra/test_asl_generated.py runs --check.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
# src/<name>.json -> <name>.asl.json
MACHINES = ("data-refresh", "filtered-index", "worker-range")
POLICIES_FILE = SRC / "retry-policies.json"
SHARED_DIR = SRC / "shared"
INCLUDE = "@include "
PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")
MAX_INCLUDE_DEPTH = 8


class BuildError(Exception):
    pass


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


def load(path: Path) -> dict:
    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise BuildError(f"{shown(path)}: key {key!r} appears twice in one object")
            seen[key] = value
        return seen

    try:
        value = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except OSError as error:
        raise BuildError(f"{shown(path)}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise BuildError(f"{shown(path)}: invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise BuildError(f"{shown(path)}: expected a JSON object")
    return value


class Builder:
    def __init__(self) -> None:
        policies = load(POLICIES_FILE).get("Policies")
        if not isinstance(policies, dict) or not all(isinstance(p, list) for p in policies.values()):
            raise BuildError(f"{shown(POLICIES_FILE)}: \"Policies\" must map names to Retry lists")
        self.policies = policies

    # -- placeholders: a string value that is exactly {{name}} becomes the parameter's value
    def substitute(self, value, params: dict, used: set[str], where: str):
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if "{{" in key:
                    raise BuildError(f"{where}: placeholders are not allowed in keys ({key!r})")
                out[key] = self.substitute(item, params, used, where)
            return out
        if isinstance(value, list):
            return [self.substitute(item, params, used, where) for item in value]
        if isinstance(value, str) and "{{" in value:
            match = PLACEHOLDER.fullmatch(value)
            if not match:
                raise BuildError(f"{where}: {value!r}: a placeholder must be the whole string, {{{{name}}}}")
            name = match.group(1)
            if name not in params:
                raise BuildError(f"{where}: no value for placeholder {{{{{name}}}}}")
            used.add(name)
            return copy.deepcopy(params[name])
        return value

    def include(self, name: str, params, where: str, depth: int) -> dict:
        path = SHARED_DIR / f"{name}.json"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or not path.is_file():
            raise BuildError(f"{where}: unknown shared fragment {name!r} (expected {shown(path)})")
        if depth > MAX_INCLUDE_DEPTH:
            raise BuildError(f"{where}: includes nested more than {MAX_INCLUDE_DEPTH} deep (a cycle?)")
        fragment = load(path)
        declared = fragment.get("Parameters", {})
        states = fragment.get("States")
        if not isinstance(states, dict) or not states:
            raise BuildError(f"{shown(path)}: \"States\" must be a non-empty object")
        if not isinstance(params, dict):
            raise BuildError(f"{where}: the value of \"{INCLUDE}{name}\" must be an object of parameters")
        if set(params) != set(declared):
            missing, unknown = sorted(set(declared) - set(params)), sorted(set(params) - set(declared))
            raise BuildError(f"{where}: \"{INCLUDE}{name}\": missing parameters {missing}, unknown parameters {unknown}")
        used: set[str] = set()
        states = self.substitute(states, params, used, shown(path))
        if used != set(declared):
            raise BuildError(f"{shown(path)}: declared parameters never used: {sorted(set(declared) - used)}")
        return self.expand_states(states, shown(path), depth + 1)

    def expand_states(self, states: dict, where: str, depth: int = 0) -> dict:
        out: dict = {}
        for name, state in states.items():
            if name.startswith(INCLUDE):
                included = self.include(name[len(INCLUDE):], state, where, depth)
            else:
                included = {name: self.resolve(state, f"{where}: state {name!r}", depth)}
            for included_name, included_state in included.items():
                if included_name in out:
                    raise BuildError(f"{where}: state {included_name!r} is defined twice")
                out[included_name] = included_state
        return out

    def resolve(self, value, where: str, depth: int):
        """Named Retry policies and nested States objects (Map, Parallel) of any value."""
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "Retry" and isinstance(item, str):
                    if item not in self.policies:
                        raise BuildError(f"{where}: unknown retry policy {item!r} (defined: {sorted(self.policies)})")
                    out[key] = copy.deepcopy(self.policies[item])
                elif key == "States" and isinstance(item, dict):
                    out[key] = self.expand_states(item, where, depth)
                else:
                    out[key] = self.resolve(item, where, depth)
            return out
        if isinstance(value, list):
            return [self.resolve(item, where, depth) for item in value]
        return value

    def machine(self, name: str) -> str:
        path = SRC / f"{name}.json"
        source = load(path)
        definition = self.resolve(source, shown(path), 0)
        leftovers = [text for text in strings_and_keys(definition) if text.startswith(INCLUDE) or "{{" in text]
        if leftovers:
            raise BuildError(f"{shown(path)}: unresolved {leftovers[:3]}")
        if definition.get("StartAt") not in definition.get("States", {}):
            raise BuildError(f"{shown(path)}: StartAt {definition.get('StartAt')!r} is not a state")
        return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def strings_and_keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_and_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_and_keys(item)
    elif isinstance(value, str):
        yield value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed definition differs from what src/ builds")
    args = parser.parse_args(argv)
    try:
        builder = Builder()
        outputs = {HERE / f"{name}.asl.json": builder.machine(name) for name in MACHINES}
    except BuildError as error:
        print(f"statemachine/build.py: error: {error}", file=sys.stderr)
        return 2
    stale = []
    for path, text in outputs.items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if args.check:
            print(f"{shown(path)} is out of date with statemachine/src/", file=sys.stderr)
            diff = list(difflib.unified_diff((current or "").splitlines(), text.splitlines(),
                                             f"{shown(path)} (committed)", f"{shown(path)} (built)", lineterm=""))
            for line in diff[:60]:
                print(f"  {line}", file=sys.stderr)
            if len(diff) > 60:
                print(f"  ... {len(diff) - 60} more diff lines", file=sys.stderr)
        else:
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {shown(path)}")
    if args.check and stale:
        print("regenerate with: python3 statemachine/build.py", file=sys.stderr)
        return 1
    if not stale:
        print("state machine definitions are up to date" if args.check else "nothing to write: definitions up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
