#!/usr/bin/env python3
"""Worst-case execution history of the state machines, against Step Functions' 25 000-event quota.

    python3 statemachine/history_events.py          # prints each machine's worst case (template defaults)
    python3 statemachine/history_events.py --json   # the same as JSON, for benchmark reports

A Standard workflow's history holds at most 25 000 events; an execution that would add one
more fails. This module counts, for a generated definition (statemachine/*.asl.json) and
the deployment's settings, the largest number of events one execution can add: the longest
path through the definition where every bounded loop runs to its limit.

How a path is found. The definitions bound every polling loop with a counter: a Pass adds 1
(`States.MathAdd($.x.count, 1)`) and a Choice compares it with a limit from `$.settings`
(`NumericLessThanPath`). The walk below tracks those counters (and `$.attempt`) exactly and
treats everything else a Choice reads, and whether a Task succeeds or goes to a Catch, as
unknown: both ways are followed. The copy loop ends by progress, not by a
counter; each of its calls takes at least PROGRESS_CALL_SECONDS (the function's time
budget), so the execution's TimeoutSeconds bounds its calls. A loop bounded by neither
raises UnboundedLoop.

Events per state (one execution, no transient retries; the names are Step Functions'
HistoryEventType values, see EVENTS_BY_KIND). Each transient retry of a Task adds 3 more
(Scheduled, Started, Failed); they are not counted, and the tests keep a 5 000-event margin
below the quota for them. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
HISTORY_QUOTA = 25_000
# What the tests allow: the quota less room for transient retries and redrives.
HISTORY_LIMIT = 20_000

# Events each kind of state adds to the history, with their HistoryEventType names (API
# reference, HistoryEvent; the same events LocalStack's engine records, e.g.
# localstack/services/stepfunctions/asl/component/state/state.py and state_task_lambda.py).
# A failed Task that a Catch handles adds the same count (…Failed instead of …Succeeded).
EVENTS_BY_KIND: dict[str, tuple[str, ...]] = {
    "Pass": ("PassStateEntered", "PassStateExited"),
    "Choice": ("ChoiceStateEntered", "ChoiceStateExited"),
    "Wait": ("WaitStateEntered", "WaitStateExited"),
    "Succeed": ("SucceedStateEntered", "SucceedStateExited"),
    # The execution's own ExecutionFailed is counted with the execution.
    "Fail": ("FailStateEntered",),
    # A Lambda function ARN as Resource.
    "Task:lambda": ("TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
                    "LambdaFunctionSucceeded", "TaskStateExited"),
    # arn:aws:states:::aws-sdk:… and other request-response integrations.
    "Task:request-response": ("TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded",
                              "TaskStateExited"),
    # .sync / .sync:2 integrations (startExecution.sync:2): the job is submitted, then waited for.
    "Task:sync": ("TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded",
                  "TaskStateExited"),
    # An inline Map, without its iterations.
    "Map": ("MapStateEntered", "MapStateStarted", "MapStateSucceeded", "MapStateExited"),
    # Each iteration of an inline Map, besides the events of its states.
    "Map:iteration": ("MapIterationStarted", "MapIterationSucceeded"),
    "Execution": ("ExecutionStarted", "ExecutionSucceeded"),
}
EVENTS = {kind: len(names) for kind, names in EVENTS_BY_KIND.items()}

MATH_ADD = re.compile(r"^States\.MathAdd\((\$\.[A-Za-z0-9_.]+),\s*(-?\d+)\)$")
STRING_TO_JSON = re.compile(r"^States\.StringToJson\('(-?\d+)'\)$")
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
PLACEHOLDER = "arn:placeholder:"

# copy_data returns `done: false` only after using this much of its call
# (refresh_core::pg::copy DEFAULT_TIME_BUDGET), so an execution makes at most
# TimeoutSeconds / this many calls.
PROGRESS_CALL_SECONDS = 600
PROGRESS_FUNCTIONS = ("CopyDataFunctionArn",)


def is_progress_call(state: dict) -> bool:
    """A Task of a loop that ends by progress (its substitution, before or after the template
    fills it in: `${CopyDataFunctionArn}` or the placeholder ARN `substituted` gives it)."""
    resource = state.get("Resource", "")
    return any(resource in (f"${{{name}}}", f"{PLACEHOLDER}{name}") for name in PROGRESS_FUNCTIONS)


class UnboundedLoop(Exception):
    """A cycle of the definition that no counter or progress rule bounds."""


def state_kind(state: dict) -> str:
    kind = state["Type"]
    if kind != "Task":
        return kind
    resource = state["Resource"]
    if resource.startswith("arn:aws:states:::"):
        return "Task:sync" if re.search(r"\.sync(:\d+)?$", resource) else "Task:request-response"
    return "Task:lambda"


def state_events(state: dict) -> int:
    """Events of one visit of a state (a Map's iterations excluded)."""
    return EVENTS[state_kind(state)]


def successors(state: dict) -> list[str]:
    nxt = [state["Next"]] if "Next" in state else []
    nxt += [choice["Next"] for choice in state.get("Choices", [])]
    if "Default" in state:
        nxt.append(state["Default"])
    nxt += [catch["Next"] for catch in state.get("Catch", [])]
    return nxt


# ------------------------------------------------------------------ counters

Counters = dict[str, int]
# Calls of a progress loop's Task so far, by state name (never overwritten by a ResultPath).
CALLS = "#calls:"


def _evaluate(value, counters: Counters, settings: Counters) -> int | None:
    """The integer a Parameters value holds, when the walk knows it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    if match := STRING_TO_JSON.match(value):
        return int(match.group(1))
    if match := MATH_ADD.match(value):
        base = counters.get(match.group(1), settings.get(match.group(1)))
        return None if base is None else base + int(match.group(2))
    return counters.get(value, settings.get(value))


def _assigned(parameters: dict, prefix: str, counters: Counters, settings: Counters) -> Counters:
    """The integers a Parameters template writes, by the path they land at (`prefix` is where
    the template's result goes: "$" or a ResultPath)."""
    out: Counters = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            out.update(_assigned(value, f"{prefix}.{key}", counters, settings))
        elif key.endswith(".$"):
            known = _evaluate(value, counters, settings)
            if known is not None:
                out[f"{prefix}.{key[:-2]}"] = known
        elif isinstance(value, int) and not isinstance(value, bool):
            out[f"{prefix}.{key}"] = value
    return out


def _math_add_targets(parameters: dict, prefix: str) -> set[str]:
    found = set()
    for key, value in parameters.items():
        if isinstance(value, dict):
            found |= _math_add_targets(value, f"{prefix}.{key}")
        elif isinstance(value, str) and MATH_ADD.match(value):
            found.add(f"{prefix}.{key.removesuffix('.$')}")
    return found


def _reads(value) -> set[str]:
    """Every `$.` path a state mentions (Choice variables, intrinsics, Parameters)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(p.rstrip(".") for p in re.findall(r"(?<!\$)\$\.[A-Za-z0-9_.]+", value))
    elif isinstance(value, list):
        for item in value:
            found |= _reads(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "Comment":
                found |= _reads(item)
    return found


def _under(path: str, prefix: str) -> bool:
    if path.startswith(CALLS):
        return False
    return prefix == "$" or path == prefix or path.startswith(prefix + ".")


def _result_target(state: dict) -> str | None:
    """Where a state writes its result: "$" (the whole state), a path, or None (nothing)."""
    kind = state["Type"]
    if kind in ("Wait", "Choice", "Succeed", "Fail"):
        return None
    if kind == "Pass" and "Parameters" not in state and "Result" not in state:
        return None  # the input passes through
    return state.get("ResultPath", "$")


class Machine:
    """One scope of a definition (the top level or a Map's item processor) as the walk sees
    it: its counters, which of them each state may still read, and Choice evaluation."""

    def __init__(self, states: dict, start: str, settings: Counters):
        self.states = states
        self.start = start
        self.settings = settings
        self.counter_paths = self._counters()
        self.live = self._liveness()

    def _counters(self) -> set[str]:
        paths: set[str] = set()
        for state in self.states.values():
            if state["Type"] == "Pass" and "Parameters" in state:
                target = state.get("ResultPath", "$")
                paths |= set(_assigned(state["Parameters"], target, {}, {}))
                paths |= _math_add_targets(state["Parameters"], target)
        return {p for p in paths if not p.startswith("$.settings.")}

    def apply(self, state: dict, counters: Counters, target: str | None = ...) -> Counters:
        """The counters after `state` wrote its result (`target` overrides its ResultPath:
        a Catch's)."""
        if target is ...:
            target = _result_target(state)
        if target is None:
            return counters
        kept = {k: v for k, v in counters.items() if not _under(k, target)}
        if state["Type"] == "Pass" and "Parameters" in state and target == _result_target(state):
            kept.update(_assigned(state["Parameters"], target, counters, self.settings))
        return kept

    def _liveness(self) -> dict[str, frozenset[str]]:
        """Counters each state may still read before they are overwritten (liveness), so
        that a finished loop's counter does not multiply the rest of the walk."""
        universe = self.counter_paths

        def uses(name: str, state: dict) -> set[str]:
            reads = {p for p in _reads(state) if p in universe}
            return reads | ({CALLS + name} if is_progress_call(state) else set())

        def kills(state: dict) -> set[str]:
            target = _result_target(state)
            return set() if target is None else {p for p in universe if _under(p, target)}

        live = {name: frozenset() for name in self.states}
        changed = True
        while changed:
            changed = False
            for name, state in self.states.items():
                out: set[str] = set()
                for nxt in successors(state):
                    out |= live.get(nxt, frozenset())
                new = frozenset(uses(name, state) | (out - kills(state)))
                if new != live[name]:
                    live[name] = new
                    changed = True
        return live

    # -- Choice rules in three-valued logic: True, False or None (unknown)
    def rule(self, rule: dict, counters: Counters):
        if "And" in rule:
            values = [self.rule(r, counters) for r in rule["And"]]
            return False if False in values else (None if None in values else True)
        if "Or" in rule:
            values = [self.rule(r, counters) for r in rule["Or"]]
            return True if True in values else (None if None in values else False)
        if "Not" in rule:
            value = self.rule(rule["Not"], counters)
            return None if value is None else not value
        path = rule.get("Variable", "")
        variable = counters.get(path, self.settings.get(path))
        for op, compare in NUMERIC_OPERATORS.items():
            if op in rule:
                other = rule[op]
            elif op + "Path" in rule:
                other = counters.get(rule[op + "Path"], self.settings.get(rule[op + "Path"]))
            else:
                continue
            if variable is None or other is None:
                return None
            return compare(variable, other)
        return None

    def choice_branches(self, state: dict, counters: Counters) -> list[str]:
        """The branches a Choice may take: rules in order, the first true one wins."""
        branches: list[str] = []
        for choice in state["Choices"]:
            value = self.rule(choice, counters)
            if value is not False:
                branches.append(choice["Next"])
            if value is True:
                return branches
        if "Default" in state:
            branches.append(state["Default"])
        return branches


NUMERIC_OPERATORS = {
    "NumericLessThan": lambda a, b: a < b,
    "NumericLessThanEquals": lambda a, b: a <= b,
    "NumericGreaterThan": lambda a, b: a > b,
    "NumericGreaterThanEquals": lambda a, b: a >= b,
    "NumericEquals": lambda a, b: a == b,
}
IMPOSSIBLE = -1
# A counter past this has no limit the walk can see (its Choice compares it with something
# unknown): reported as an unbounded loop instead of recursing without end.
MAX_COUNT = 100_000


class Walk:
    """The longest path (in events) through a definition, with its counters tracked."""

    def __init__(self, definition: dict, settings: Counters, map_items: int, progress_calls: int):
        self.definition = definition
        self.settings = settings
        self.map_items = map_items
        self.progress_calls = progress_calls

    def worst(self) -> int:
        """ExecutionStarted … ExecutionSucceeded/Failed, and the longest path between."""
        top = Machine(self.definition["States"], self.definition["StartAt"], self.settings)
        return EVENTS["Execution"] + _big_stack(lambda: self.scope(top, {}))

    def scope(self, machine: Machine, initial: Counters) -> int:
        on_path: set[tuple] = set()

        @lru_cache(maxsize=None)
        def best(name: str, frozen: tuple) -> int:
            key = (name, frozen)
            if key in on_path:
                raise UnboundedLoop(f"the loop through {name!r} is bounded by no counter ({dict(frozen)})")
            on_path.add(key)
            try:
                return visit(name, dict(frozen))
            finally:
                on_path.discard(key)

        def enter(name: str, counters: Counters) -> int:
            live = machine.live[name]
            key = tuple(sorted((k, v) for k, v in counters.items() if k in live))
            if any(v > MAX_COUNT for _, v in key):
                raise UnboundedLoop(f"a counter of the loop through {name!r} has no known limit ({dict(key)})")
            return best(name, key)

        def visit(name: str, counters: Counters) -> int:
            state = machine.states[name]
            events = state_events(state)
            if is_progress_call(state):
                calls = counters.get(CALLS + name, 0) + 1
                if calls > self.progress_calls:
                    return IMPOSSIBLE  # more calls than the execution's time allows
                counters = {**counters, CALLS + name: calls}
            if state["Type"] == "Map":
                processor = state.get("ItemProcessor") or state["Iterator"]
                inner = Machine(processor["States"], processor["StartAt"], self.settings)
                item = _assigned(state.get("ItemSelector", {}), "$", counters, self.settings)
                iteration = EVENTS["Map:iteration"] + self.scope(inner, item)
                events += self.map_items * iteration
            ends = [events] if state["Type"] in ("Succeed", "Fail") or state.get("End") else []
            paths = []
            if state["Type"] == "Choice":
                paths += [enter(nxt, counters) for nxt in machine.choice_branches(state, counters)]
            else:
                if "Next" in state:
                    paths.append(enter(state["Next"], machine.apply(state, counters)))
                for catch in state.get("Catch", []):
                    paths.append(enter(catch["Next"], machine.apply(state, counters, catch.get("ResultPath", "$"))))
            possible = [p for p in paths if p != IMPOSSIBLE]
            if possible:
                ends.append(events + max(possible))
            return max(ends) if ends else IMPOSSIBLE

        result = enter(machine.start, initial)
        if result == IMPOSSIBLE:
            raise UnboundedLoop("no path of the definition ends within its bounds")
        return result


def _big_stack(fn):
    """Runs fn in a thread with a deep stack: the walk recurses once per state on its path."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 200_000))
    old = threading.stack_size(512 * 1024 * 1024)
    try:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
        sys.setrecursionlimit(limit)
    if "error" in result:
        error = result["error"]
        # A fresh exception: the original's traceback is as deep as the walk.
        raise type(error)(*error.args) from None
    return result["value"]


def loop_iteration_events(definition: dict) -> dict[str, int]:
    """Events one iteration of each loop adds: for each counter increment and each progress
    Task, the shortest cycle back to it, Catch routes included (Map item processors too), by
    that state's name."""
    out: dict[str, int] = {}

    def scope(states: dict) -> None:
        for name, state in states.items():
            counts = state["Type"] == "Pass" and _math_add_targets(state.get("Parameters", {}), "$")
            if not counts and not is_progress_call(state):
                continue
            parent: dict[str, str | None] = {name: None}
            frontier, last = [name], None
            while frontier and last is None:
                following = []
                for node in frontier:
                    for m in successors(states[node]):
                        if m == name:
                            last = node
                            break
                        if m in states and m not in parent:
                            parent[m] = node
                            following.append(m)
                    if last is not None:
                        break
                frontier = following
            cycle = []
            while last is not None:
                cycle.append(last)
                last = parent[last]
            if cycle:
                out[name] = sum(state_events(states[n]) for n in cycle)
        for state in states.values():
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                scope(processor["States"])

    scope(definition["States"])
    return out


# ------------------------------------------------------------------ the deployed machines


def template_defaults(path: Path = TEMPLATE) -> dict[str, str]:
    """`Default` of every parameter of the template's Parameters section, as text.

    A small reader for the one shape the template uses (two-space parameter names, four-space
    properties), so this module needs only the standard library; tests/infra checks it
    against cfn-lint's full YAML reader."""
    defaults: dict[str, str] = {}
    in_parameters, current = False, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_parameters = line.rstrip() == "Parameters:"
            current = None
            continue
        if not in_parameters:
            continue
        if match := re.match(r"^  ([A-Za-z0-9]+):\s*$", line):
            current = match.group(1)
        elif current and (match := re.match(r"^    Default:\s*(.*?)\s*$", line)):
            value = match.group(1)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            defaults[current] = value
    return defaults


def substituted(path: Path, parameters: dict[str, str]) -> dict:
    """The definition with each `${Name}` a template parameter replaced by its value (the
    template passes the numeric settings under the parameters' own names) and any other
    (function and state machine ARNs) by a placeholder ARN."""
    text = path.read_text(encoding="utf-8")
    return json.loads(SUBSTITUTION.sub(
        lambda m: parameters.get(m.group(1), PLACEHOLDER + m.group(1)), text))


def settings_of(definition: dict) -> Counters:
    """`$.settings.*` as the definition's Pass states compute them (States.StringToJson of a
    substituted number, in the first state), Map item processors included."""
    found: Counters = {}

    def scope(states: dict) -> None:
        for state in states.values():
            if state["Type"] == "Pass" and "Parameters" in state:
                target = state.get("ResultPath", "$")
                assigned = _assigned(state["Parameters"], target, {}, {})
                found.update({k: v for k, v in assigned.items() if k.startswith("$.settings.")})
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                scope(processor["States"])

    scope(definition["States"])
    return found


def timeout_progress_calls(definition: dict) -> int:
    timeout = definition.get("TimeoutSeconds")
    if not timeout:
        raise UnboundedLoop("a definition with a progress loop needs TimeoutSeconds to bound it")
    return timeout // PROGRESS_CALL_SECONDS + 1


def worst_case_history_events(definition: dict, map_items: int) -> int:
    """The largest history one execution of `definition` (substituted) can have, with
    `map_items` items in each Map (the worker ranges: the environment's worker count)."""
    walk = Walk(definition, settings_of(definition), map_items, timeout_progress_calls(definition))
    return walk.worst()


# Which template parameter gives each Map's item count: the reindex Map runs one item per
# worker range, and a production run plans WorkersProduction ranges.
MAP_ITEMS_PARAMETER = "WorkersProduction"
MACHINE_FILES = {
    "data-refresh": HERE / "data-refresh.asl.json",
    "filtered-index": HERE / "filtered-index.asl.json",
    "worker-range": HERE / "worker-range.asl.json",
}


def deployed_worst_cases(parameters: dict[str, str] | None = None) -> dict[str, int]:
    """Each machine's worst case with the template's defaults (or `parameters`)."""
    values = template_defaults() if parameters is None else parameters
    items = int(values[MAP_ITEMS_PARAMETER])
    return {name: worst_case_history_events(substituted(path, values), items)
            for name, path in MACHINE_FILES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print {machine: worst_case_history_events}")
    args = parser.parse_args(argv)
    worst = deployed_worst_cases()
    if args.json:
        print(json.dumps({"worst_case_history_events": worst, "quota": HISTORY_QUOTA, "limit": HISTORY_LIMIT}))
        return 0
    for name, events in worst.items():
        print(f"{name:15} worst case {events:6} events (limit {HISTORY_LIMIT}, quota {HISTORY_QUOTA})")
    return 0 if max(worst.values()) <= HISTORY_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
