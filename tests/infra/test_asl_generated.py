"""The committed state machine definitions are what statemachine/build.py makes of
statemachine/src/ (the fragments are the source; the .asl.json files are generated)."""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------- the failed state's name

FAILURE_ENTRY = {
    "data-refresh": "Re-enable alarm actions after failure?",
    "filtered-index": "Delete unpromoted filtered index",
}


def ways_into(states: dict, entry: str):
    """(state name, the object carrying the transition) for every way into `entry`."""
    for name, state in states.items():
        for catch in state.get("Catch", []):
            if catch["Next"] == entry:
                yield name, catch
        if state.get("Next") == entry:
            yield name, state


# Pass states entering the failure path that relay a failure named by its Catch: the data
# refresh's SQL jobs fail through one chain that reads the child execution's error.
RELAYS = {
    "data-refresh": {
        "Fail run with worker job failure": ("Finish copy on a worker", "Reapply constraints on a worker"),
    },
}


def test_every_way_into_the_failure_path_names_the_failed_state():
    """The failure notice reads $failed_state: every Catch and Pass state entering the
    failure path assigns it its own name (build.py adds it, so a new state cannot forget)."""
    for machine, entry in FAILURE_ENTRY.items():
        definition = json.loads((STATEMACHINE / f"{machine}.asl.json").read_text())
        states = definition["States"]
        ways = list(ways_into(states, entry))
        assert len(ways) >= 5, machine
        for name, carrier in ways:
            if name in RELAYS.get(machine, {}):
                continue
            assert carrier.get("Assign", {}).get("failed_state") == name, f"{machine}: {name}"
        # A relay passes on a failure whose Catch named the state that failed: every way into
        # the relay assigns it.
        for relay in RELAYS.get(machine, ()):
            assert "Assign" not in states[relay], relay
            for job in RELAYS[machine][relay]:
                (catch,) = states[job]["Catch"]
                assert catch["Assign"] == {"failed_state": job}, job
        for state in states.values():
            if state["Type"] == "Choice":
                targets = [c["Next"] for c in state["Choices"]] + [state.get("Default")]
                assert entry not in targets, f"{machine}: a Choice enters the failure path unnamed"
        (notice,) = [
            s for s in states.values()
            if s.get("Resource") == "arn:aws:states:::sns:publish"
            and s["Parameters"]["Message"].get("event", "").endswith(".failed")
        ]
        message = notice["Parameters"]["Message"]
        assert message["failed_state.$"] == "$failed_state"
        assert message["error.$"] == "$.error" and message["cleanup.$"] == "$.cleanup"


def test_the_build_refuses_a_choice_into_the_failure_path(tmp_path):
    folder = copy_sources(tmp_path)
    source = folder / "src" / "filtered-index.json"
    definition = json.loads(source.read_text())
    definition["States"]["Gate"] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.x", "BooleanEquals": True, "Next": "Rebuild failed"}],
        "Default": FAILURE_ENTRY["filtered-index"],
    }
    source.write_text(json.dumps(definition, indent=2) + "\n")
    result = run_build(folder)
    assert result.returncode == 2
    assert "Choice 'Gate'" in result.stderr


def test_an_explicit_failed_state_is_kept(tmp_path):
    folder = copy_sources(tmp_path)
    source = folder / "src" / "filtered-index.json"
    definition = json.loads(source.read_text())
    promote = definition["States"]["Promote filtered index alias"]
    promote["Catch"][0] = {**promote["Catch"][0], "Assign": {"failed_state": "Moving the alias"}}
    source.write_text(json.dumps(definition, indent=2) + "\n")
    assert run_build(folder).returncode == 0
    built = json.loads((folder / "filtered-index.asl.json").read_text())
    (catch,) = built["States"]["Promote filtered index alias"]["Catch"]
    assert catch["Assign"] == {"failed_state": "Moving the alias"}


def test_notifications_are_json_objects_naming_their_event():
    """Every notification's Message is an object (Step Functions serialises it) with a fixed
    `event`: the chat forwarder (refresh_core::notification) formats by it."""
    events = {}
    for machine in FAILURE_ENTRY:
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
