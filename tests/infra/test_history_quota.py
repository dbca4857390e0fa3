"""The state machines fit Step Functions' 25 000-event history quota at production size.

statemachine/history_events.py walks each generated definition, with the template's default
settings, along its longest path (every bounded loop at its limit, the reindex Map with the
production worker count) and counts the events it adds; each machine must stay at or under
20 000, the rest of the quota being room for transient retries (3 events each). Run with
`-s` to see the numbers.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def _load_module():
    path = ROOT / "statemachine" / "history_events.py"
    spec = importlib.util.spec_from_file_location("history_events", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["history_events"] = module
    spec.loader.exec_module(module)
    return module


history = _load_module()
MACHINES = {
    "data-refresh": "DataRefreshStateMachine",
    "filtered-index": "FilteredIndexStateMachine",
    "worker-range": "WorkerRangeStateMachine",
}


def load_template() -> dict:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches
    return json.loads(json.dumps(template))


def definition(machine: str, parameters: dict[str, str] | None = None) -> dict:
    return history.substituted(history.MACHINE_FILES[machine], parameters or history.template_defaults())


# ------------------------------------------------------------------ the module reads the deployment right


def test_the_module_reads_the_template_defaults_as_cfn_lint_does():
    parameters = load_template()["Parameters"]
    expected = {name: str(p["Default"]) for name, p in parameters.items() if "Default" in p}
    assert history.template_defaults() == expected
    assert history.template_defaults()["ReindexMaxPolls"] == "288"


def test_numeric_substitutions_pass_the_parameter_of_the_same_name():
    """substituted() fills `${Name}` with parameter Name: true for every number the template
    hands a definition, and every other substitution is an ARN."""
    template = load_template()
    for logical_id in MACHINES.values():
        subs = template["Resources"][logical_id]["Properties"]["DefinitionSubstitutions"]
        for name, value in subs.items():
            if name in template["Parameters"]:
                assert value in ({"Fn::Join": ["", [{"Ref": name}]]}, {"Ref": name}), (logical_id, name)
            else:
                assert name.endswith("Arn"), (logical_id, name)


def test_settings_are_read_from_each_definitions_first_state():
    assert history.settings_of(definition("worker-range")) == {
        "$.settings.poll_seconds": 300,
        "$.settings.check_seconds": 15,
        "$.settings.instance_max_checks": 40,
        "$.settings.worker_health_max_checks": 40,
        "$.settings.reindex_max_polls": 288,
        "$.settings.range_max_attempts": 3,
    }
    assert history.settings_of(definition("data-refresh"))["$.settings.conflict_max_waits"] == 144


# ------------------------------------------------------------------ the counting itself


def tiny(states: dict, start: str, timeout: int = 3600) -> dict:
    return {"StartAt": start, "TimeoutSeconds": timeout, "States": states}


def test_a_straight_path_counts_each_state_by_its_kind():
    definition = tiny({
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Wait", "Seconds": 1, "Next": "C"},
        "C": {"Type": "Task", "Resource": "${SomeFunctionArn}", "Next": "D"},
        "D": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:describeInstances", "Next": "E"},
        "E": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "Next": "F"},
        "F": {"Type": "Succeed"},
    }, "A")
    # Execution 2 + Pass 2 + Wait 2 + Lambda 5 + SDK 5 + .sync 6 + Succeed 2.
    assert history.worst_case_history_events(definition, 1) == 24


def counted_loop(limit: int) -> dict:
    return tiny({
        "Start": {"Type": "Pass", "Parameters": {"settings": {"max.$": f"States.StringToJson('{limit}')"},
                                                  "polls": {"count": 0}}, "Next": "Poll"},
        "Poll": {"Type": "Task", "Resource": "${GetFunctionArn}", "ResultPath": "$.status", "Next": "Done?",
                 "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}]},
        "Done?": {"Type": "Choice", "Choices": [
            {"Variable": "$.status.done", "BooleanEquals": True, "Next": "Ok"},
            {"Variable": "$.polls.count", "NumericLessThanPath": "$.settings.max", "Next": "Wait"}],
            "Default": "Failed"},
        "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Count"},
        "Count": {"Type": "Pass", "Parameters": {"count.$": "States.MathAdd($.polls.count, 1)"},
                  "ResultPath": "$.polls", "Next": "Poll"},
        "Ok": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "X"},
    }, "Start")


@pytest.mark.parametrize("limit", [0, 1, 7, 288])
def test_a_counted_loop_runs_to_its_limit(limit):
    # Execution 2 + Start 2 + limit × (Poll 5 + Choice 2 + Wait 2 + Count 2) + the last
    # Poll 5 + Choice 2 + Succeed 2 (Succeed has two events, Fail one).
    assert history.worst_case_history_events(counted_loop(limit), 1) == 2 + 2 + 11 * limit + 5 + 2 + 2
    assert history.loop_iteration_events(counted_loop(limit)) == {"Count": 11}


def test_a_loop_no_counter_bounds_is_refused():
    loop = counted_loop(3)
    loop["States"]["Count"]["Parameters"] = {"count.$": "$.polls.count"}
    with pytest.raises(history.UnboundedLoop):
        history.worst_case_history_events(loop, 1)


def test_a_progress_loop_is_bounded_by_the_execution_timeout():
    definition = tiny({
        "Copy": {"Type": "Task", "Resource": "${CopyDataFunctionArn}", "ResultPath": "$.copy", "Next": "Done?"},
        "Done?": {"Type": "Choice", "Choices": [{"Variable": "$.copy.done", "BooleanEquals": True, "Next": "Ok"}],
                  "Default": "Copy"},
        "Ok": {"Type": "Succeed"},
    }, "Copy", timeout=6000)
    # 6000 s / 600 s per call + the last call: 11 calls of Task 5 + Choice 2.
    assert history.worst_case_history_events(definition, 1) == 2 + 11 * 7 + 2


def test_an_inline_map_counts_every_item_and_its_iteration_events():
    body = counted_loop(2)
    definition = tiny({
        "Map": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Start", "States": body["States"]},
            "End": True},
    }, "Map")
    one_item = history.worst_case_history_events(body, 1) - 2
    assert history.worst_case_history_events(definition, 6) == 2 + 4 + 6 * (2 + one_item)


# ------------------------------------------------------------------ the deployed machines


def test_every_machine_fits_the_history_quota_at_production_size():
    worst = history.deployed_worst_cases()
    assert set(worst) == set(MACHINES)
    for machine, events in worst.items():
        print(f"\n{machine}: worst case {events} history events (limit {history.HISTORY_LIMIT}); "
              f"loop iterations: {history.loop_iteration_events(definition(machine))}")
    over = {m: n for m, n in worst.items() if n > history.HISTORY_LIMIT}
    assert not over, f"over {history.HISTORY_LIMIT} history events: {over}"
    # What each number is made of: the reindex polls of one range with all its attempts are
    # the largest part of any one history.
    assert worst["worker-range"] > 3 * 288 * 11


def test_the_data_refresh_machine_fits_with_the_most_workers_the_template_allows():
    parameters = history.template_defaults()
    most = load_template()["Parameters"][history.MAP_ITEMS_PARAMETER]["MaxValue"]
    parameters[history.MAP_ITEMS_PARAMETER] = str(most)
    events = history.worst_case_history_events(definition("data-refresh", parameters), most)
    print(f"\ndata-refresh with {most} workers: {events} history events")
    assert events <= history.HISTORY_LIMIT


def test_the_reindex_in_an_inline_map_would_not_fit():
    """Why the ranges run as child executions: the same worker states inline in the data
    refresh execution's Map put every range's polling into one history."""
    parent = copy.deepcopy(definition("data-refresh"))
    child = definition("worker-range")
    (reindex,) = [s for s in parent["States"].values() if s["Type"] == "Map"]
    reindex["ItemProcessor"] = {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": child["StartAt"],
                                "States": child["States"]}
    items = int(history.template_defaults()[history.MAP_ITEMS_PARAMETER])
    inline = history.worst_case_history_events(parent, items)
    print(f"\ndata-refresh with the worker states inline: {inline} history events")
    assert inline > history.HISTORY_QUOTA


def test_one_poll_of_each_loop_adds_eleven_events_and_each_copy_call_seven():
    loops = {}
    for machine in MACHINES:
        loops.update(history.loop_iteration_events(definition(machine)))
    # Wait 2 + Lambda Task 5 + Choice 2 + counting Pass 2; the instance check's Task is an
    # EC2 SDK call (5 as well).
    for name in ("Count conflict wait", "Count new index health check", "Count filtered reindex poll",
                 "Count filtered index health check", "Count instance check", "Count worker health check",
                 "Count reindex poll"):
        assert loops[name] == 11, (name, loops)
    assert loops["Copy data"] == 7
