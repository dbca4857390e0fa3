"""The committed state machine definitions are what statemachine/build.py makes of
statemachine/src/ (the fragments are the source; the .asl.json files are generated)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINE = ROOT / "statemachine"
OUTPUTS = ("data-refresh.asl.json", "filtered-index.asl.json", "worker-range.asl.json")


def run_build(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(folder / "build.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_sources(tmp_path: Path) -> Path:
    folder = tmp_path / "statemachine"
    shutil.copytree(STATEMACHINE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_committed_definitions_are_generated_from_the_fragments():
    result = run_build(STATEMACHINE, "--check")
    assert result.returncode == 0, (
        "the committed state machine definitions differ from statemachine/src/ "
        f"(run `python3 statemachine/build.py`):\n{result.stdout}{result.stderr}"
    )


def test_check_names_a_stale_definition(tmp_path):
    # The check above can fail: a fragment edit without regenerating is caught and named.
    folder = copy_sources(tmp_path)
    policies = folder / "src" / "retry-policies.json"
    data = json.loads(policies.read_text())
    data["Policies"]["lambda-transient-errors"][0]["MaxAttempts"] += 1
    policies.write_text(json.dumps(data, indent=2) + "\n")
    result = run_build(folder, "--check")
    assert result.returncode == 1
    for name in OUTPUTS:
        assert name in result.stderr
    # Regenerating brings the copy back in line (and leaves the real outputs alone).
    assert run_build(folder).returncode == 0
    assert run_build(folder, "--check").returncode == 0
    assert json.loads((folder / OUTPUTS[0]).read_text()) != json.loads((STATEMACHINE / OUTPUTS[0]).read_text())


def test_check_catches_a_hand_edited_definition(tmp_path):
    folder = copy_sources(tmp_path)
    output = folder / OUTPUTS[1]
    definition = json.loads(output.read_text())
    definition["TimeoutSeconds"] += 1
    output.write_text(json.dumps(definition, indent=2) + "\n")
    result = run_build(folder, "--check")
    assert result.returncode == 1 and OUTPUTS[1] in result.stderr
    assert OUTPUTS[0] not in result.stderr


def test_shared_fragments_are_used_by_both_machines():
    # The point of the fragments: both machines take these states from one place.
    for machine in ("data-refresh", "filtered-index"):
        source = json.loads((STATEMACHINE / "src" / f"{machine}.json").read_text())
        includes = {k.removeprefix("@include ") for k in source["States"] if k.startswith("@include ")}
        assert includes == {"prelude", "filtered-index-build"}, machine


# ---------------------------------------------------------------- notifications

NOTIFYING_MACHINES = ("data-refresh", "filtered-index")


def test_no_definition_uses_variables():
    """Step Functions variables (`Assign`, `$name` references) are evaluated by LocalStack's
    JSONata engine, which needs a Java 21 it cannot install offline: a failure notice that read
    a variable failed in LocalStack (States.Runtime) and was never sent."""
    for path in STATEMACHINE.glob("*.asl.json"):
        text = path.read_text()
        assert '"Assign"' not in text, path.name
        definition = json.loads(text)

        def refs(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    if key.endswith(".$") and isinstance(item, str) and re.match(r"^\$[A-Za-z_]", item):
                        yield key, item
                    yield from refs(item)
            elif isinstance(value, list):
                for item in value:
                    yield from refs(item)

        assert not list(refs(definition)), (path.name, list(refs(definition)))


def test_notifications_are_json_objects_naming_their_event():
    """Every notification's Message is an object (Step Functions serialises it) with a fixed
    `event`: the chat forwarder (refresh_core::notification) formats by it."""
    events = {}
    for machine in NOTIFYING_MACHINES:
        definition = json.loads((STATEMACHINE / f"{machine}.asl.json").read_text())
        for name, state in definition["States"].items():
            if state.get("Resource") != "arn:aws:states:::sns:publish":
                continue
            message = state["Parameters"]["Message"]
            assert isinstance(message, dict), f"{machine}: {name}"
            events[message["event"]] = machine
            if not message["event"].endswith(".refused"):
                assert {"media_type.$", "environment.$", "execution.$"} <= set(message), name
    assert set(events) == {
        "refresh.refused", "refresh.started", "refresh.copy_done", "refresh.reindex_done",
        "refresh.filtered_index_done", "refresh.promoted", "refresh.succeeded", "refresh.failed",
        "filtered_index.started", "filtered_index.rebuilt", "filtered_index.failed",
    }
