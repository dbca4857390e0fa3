"""Static checks of infra/template.yaml and the three state machine definitions.

These run offline (no AWS, no LocalStack): cfn-lint on the template as written and with
the definitions inlined (so cfn-lint's ASL schema sees them), the SAM transform that
LocalStack's CloudFormation applies, and graph checks of the definitions that encode the
pipeline's safety rules (workers always terminated, failures always cleaned up, loops
bounded, no retry of errors that need an operator).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
STEPS_REGISTRY = ROOT / "functions" / "src" / "steps" / "mod.rs"
DEFINITIONS = {
    "DataRefreshStateMachine": ROOT / "statemachine" / "data-refresh.asl.json",
    "FilteredIndexStateMachine": ROOT / "statemachine" / "filtered-index.asl.json",
    "WorkerRangeStateMachine": ROOT / "statemachine" / "worker-range.asl.json",
}
# The machines an operator or a schedule starts: each validates its input and cleans up.
# The worker-range machine is started by the data refresh machine's Map, one execution per
# range; its failures end the Map, whose Catch cleans up for it.
TOP_LEVEL = ("DataRefreshStateMachine", "FilteredIndexStateMachine")
WORKER_RANGE = "WorkerRangeStateMachine"
START_RANGE_EXECUTION = "arn:aws:states:::states:startExecution.sync:2"
# Errors of starting an execution that leave nothing started: the only ones a child-execution
# Task may retry (a retry after States.TaskFailed would run a failed range again, past
# RangeMaxAttempts).
START_EXECUTION_RETRIABLE = {
    "StepFunctions.ExecutionLimitExceeded",
    "StepFunctions.ExecutionLimitExceededException",
    "StepFunctions.ThrottlingException",
    "StepFunctions.SdkClientException",
    "StepFunctions.AWSStepFunctionsException",
}
# The state every failure of a definition must pass before it ends (after the point where
# the run may have created something).
CLEANUP_STATE = {
    "DataRefreshStateMachine": "Clean up failed run",
    "FilteredIndexStateMachine": "Delete unpromoted filtered index",
}
# Failing here means nothing was created (bad input, or another run holds the environment,
# whose temp table must not be dropped): these catch straight to a Fail state.
PRE_RESOURCE_TASKS = {"Validate input", "Check concurrency"}

TRANSIENT_LAMBDA_ERRORS = {
    "TransientDatabaseError",
    "TransientSearchError",
    "Lambda.ServiceException",
    "Lambda.TooManyRequestsException",
}
# Errors that need an operator: retrying them only delays the failure (docs/ARCHITECTURE.md).
NEVER_RETRIED = {
    "InvalidInput",
    "ConcurrencyConflict",
    "RecordDropTooLarge",
    "InvalidState",
    "ConfigurationError",
    "InternalError",
    "WorkerTaskFailed",
    "States.ALL",
}
SUB_PATTERN = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


# ---------------------------------------------------------------- helpers


def load_template() -> dict:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches, f"template does not parse: {matches}"
    # Plain dicts/lists/strings (cfn-lint's decoder returns position-carrying subclasses).
    return json.loads(json.dumps(template))


def load_definition(logical_id: str) -> dict:
    return json.loads(DEFINITIONS[logical_id].read_text())


def all_states(definition: dict) -> dict[str, dict]:
    """Every state, including those inside Map/Parallel, by name (names are global in ASL)."""
    found: dict[str, dict] = {}

    def walk(states: dict) -> None:
        for name, state in states.items():
            assert name not in found, f"state name {name!r} is used twice"
            found[name] = state
            if state["Type"] == "Map":
                processor = state.get("ItemProcessor") or state["Iterator"]
                walk(processor["States"])
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return found


def successors(state: dict, follow_catch: bool = True) -> list[str]:
    nxt = []
    if "Next" in state:
        nxt.append(state["Next"])
    if state["Type"] == "Choice":
        nxt.extend(choice["Next"] for choice in state["Choices"])
        if "Default" in state:
            nxt.append(state["Default"])
    if follow_catch:
        nxt.extend(c["Next"] for c in state.get("Catch", []))
    return nxt


def is_terminal(state: dict) -> bool:
    return state["Type"] in ("Succeed", "Fail") or state.get("End", False)


def paths_avoiding(states: dict, start: str, avoid: set[str], edges=successors) -> list[list[str]]:
    """Paths from `start` to a terminal state that never enter a state in `avoid`.

    Loops are cut: a state already on the path is not revisited (a loop cannot end a path).
    Returns at most a few offending paths, for the failure message.
    """
    bad: list[list[str]] = []
    stack = [(start, [start])]
    seen_edges: set[tuple[str, ...]] = set()
    while stack and len(bad) < 3:
        name, path = stack.pop()
        if name in avoid:
            continue
        state = states[name]
        if is_terminal(state):
            bad.append(path)
            continue
        for nxt in edges(state):
            key = (name, nxt, *sorted(set(path)))
            if nxt in path or key in seen_edges:
                continue
            seen_edges.add(key)
            stack.append((nxt, path + [nxt]))
    return bad


def reachable(states: dict, start: str, avoid: set[str]) -> set[str]:
    """States reachable from `start` (Catch edges included) without entering `avoid`."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name in avoid:
            continue
        seen.add(name)
        todo.extend(successors(states[name]))
    return seen


def is_lambda_task(state: dict) -> bool:
    return state["Type"] == "Task" and state["Resource"].endswith("FunctionArn}")


def is_sdk_task(state: dict) -> bool:
    """An AWS API call: an SDK integration or an optimised one (sns:publish)."""
    return state["Type"] == "Task" and (
        state["Resource"].startswith("arn:aws:states:::aws-sdk:")
        or state["Resource"] == "arn:aws:states:::sns:publish"
    )


def is_notification(name: str, state: dict) -> bool:
    return state.get("Resource") == "arn:aws:states:::sns:publish"


def is_child_execution_task(state: dict) -> bool:
    return state["Type"] == "Task" and state["Resource"] == START_RANGE_EXECUTION


def iam_statements(template: dict):
    """(resource id, statement) for every statement of every inline and managed policy,
    both branches of any Fn::If included."""

    def statements_of(doc):
        if isinstance(doc, dict) and "Fn::If" in doc:
            for branch in doc["Fn::If"][1:]:
                yield from statements_of(branch)
            return
        if isinstance(doc, dict) and "Statement" in doc:
            for statement in doc["Statement"]:
                yield from statements_of(statement)
            return
        if isinstance(doc, dict) and doc.get("Ref") == "AWS::NoValue":
            return
        if isinstance(doc, dict) and "Effect" in doc:
            yield doc
            return
        raise AssertionError(f"unexpected policy element {doc!r}")

    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            for s in statements_of(props["PolicyDocument"]):
                yield logical_id, s
        for policy in props.get("Policies", []):
            for s in statements_of(policy["PolicyDocument"]):
                yield logical_id, s
        if "AssumeRolePolicyDocument" in props:
            for s in statements_of(props["AssumeRolePolicyDocument"]):
                yield logical_id, s


def as_list(value):
    return value if isinstance(value, list) else [value]


def architecture_binaries() -> set[str]:
    text = ARCHITECTURE.read_text()
    table = text.split("## Lambda functions", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))


def cfn_lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---------------------------------------------------------------- template


def test_cfn_lint_passes_on_the_template():
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}\n{result.stderr}"


def test_cfn_lint_passes_with_the_definitions_inlined(tmp_path):
    # cfn-lint validates a state machine definition only when it is inline.
    template = load_template()
    for logical_id in DEFINITIONS:
        props = template["Resources"][logical_id]["Properties"]
        del props["DefinitionS3Location"]
        props["Definition"] = load_definition(logical_id)
    inlined = tmp_path / "inlined.json"
    inlined.write_text(json.dumps(template))
    result = cfn_lint(inlined)
    assert result.returncode == 0, f"cfn-lint found problems in a definition:\n{result.stdout}\n{result.stderr}"


def test_sam_transform_succeeds_after_packaging(monkeypatch):
    """What LocalStack's (and AWS's) CloudFormation does after `aws cloudformation package`."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = load_template()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if "CodeUri" in props:
            local = ROOT / "infra" / props["CodeUri"]
            assert local.parts[-3:-1] == ("build", "lambda"), props["CodeUri"]
            props["CodeUri"] = f"s3://packaged/{logical_id}.zip"
        if "DefinitionS3Location" in props:
            assert (ROOT / "infra" / props["DefinitionS3Location"]).resolve() == DEFINITIONS[logical_id]
            props["DefinitionS3Location"] = {"Bucket": "packaged", "Key": logical_id}

    class NoManagedPolicies:
        def load(self):
            return {}

    params = {"WorkerAmiId": "ami-12345678", "WorkerArtifactBucket": "artifacts"}
    out = transform(template, params, NoManagedPolicies())
    functions = [r for r in out["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == len(architecture_binaries())
    for function in functions:
        props = function["Properties"]
        assert props["Runtime"] == "provided.al2023"
        assert props["Handler"] == "bootstrap"
        env = props["Environment"]["Variables"]
        assert {"REFRESH_SECRET_ID_STAGING", "REFRESH_SECRET_ID_PRODUCTION", "WORKER_PORT"} <= env.keys()


def step_of(function: dict) -> str:
    """The step a function runs: every function shares one bootstrap and names its step."""
    return function["Properties"]["Environment"]["Variables"]["REFRESH_STEP"]


def registered_steps() -> dict[str, str]:
    """`module => Variant` lines of the `steps!` registry in functions/src/steps/mod.rs."""
    text = STEPS_REGISTRY.read_text()
    block = text.split("steps! {", 1)[1].split("}", 1)[0]
    return dict(re.findall(r"^\s*([a-z_]+) => ([A-Za-z]+),", block, flags=re.MULTILINE))


def test_every_architecture_lambda_has_a_function_and_nothing_else():
    template = load_template()
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    steps = [step_of(f) for f in functions]
    assert len(steps) == len(set(steps)), f"two functions run the same step: {sorted(steps)}"
    assert set(steps) == architecture_binaries()
    # One bootstrap serves every step.
    assert {f["Properties"]["CodeUri"] for f in functions} == {"build/lambda/refresh-step/"}


# Steps no state machine calls, with what invokes them instead.
NOT_IN_A_DEFINITION = {
    "forward_notification": "the notification topic, through ChatForwarderSubscription",
}


def test_adding_a_step_touches_every_place():
    """A step exists in the registry, the architecture table, the template (its function,
    named after the registry's variant) and a definition, or in none of them."""
    template = load_template()
    resources = template["Resources"]
    registry = registered_steps()
    assert len(registry) >= 21
    assert set(registry) == architecture_binaries()
    used = set()
    for path in DEFINITIONS.values():
        used |= set(SUB_PATTERN.findall(path.read_text()))
    for step, variant in registry.items():
        function_id = f"{variant}Function"
        assert function_id in resources, f"step {step}: no {function_id} in the template"
        assert step_of(resources[function_id]) == step, function_id
        if step in NOT_IN_A_DEFINITION:
            assert f"{function_id}Arn" not in used, f"step {step} is called by a definition now"
            continue
        assert f"{function_id}Arn" in used, f"step {step}: no definition calls ${{{function_id}Arn}}"


def test_the_chat_forwarder_exists_only_with_a_webhook_secret_and_hears_the_topic():
    template = load_template()
    resources = template["Resources"]
    chat = {n for n, r in resources.items() if r.get("Condition") == "HasChatWebhook"}
    assert chat == {
        "ChatForwarderRole", "ForwardNotificationFunction", "ChatForwarderSubscription",
        "ChatForwarderPermission", "ChatForwarderInvokeConfig",
    }
    assert template["Parameters"]["ChatWebhookSecretArn"]["Default"] == ""
    subscription = resources["ChatForwarderSubscription"]["Properties"]
    assert subscription == {
        "TopicArn": {"Ref": "NotificationTopic"},
        "Protocol": "lambda",
        "Endpoint": {"Fn::GetAtt": ["ForwardNotificationFunction", "Arn"]},
    }
    function = resources["ForwardNotificationFunction"]["Properties"]
    # The secret's ARN, never its value, is in the environment; the function reads it.
    assert function["Environment"]["Variables"]["CHAT_WEBHOOK_SECRET_ID"] == {"Ref": "ChatWebhookSecretArn"}
    role = resources["ChatForwarderRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    secrets = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Resource"] for s in secrets] == [{"Ref": "ChatWebhookSecretArn"}]
    assert resources["ChatForwarderInvokeConfig"]["Properties"]["MaximumRetryAttempts"] <= 1


def test_no_iam_action_is_a_wildcard():
    template = load_template()
    checked = 0
    for logical_id, statement in iam_statements(template):
        for action in as_list(statement["Action"]):
            checked += 1
            assert isinstance(action, str), f"{logical_id}: action {action!r} is not a literal"
            assert action != "*" and not action.endswith(":*") and "*" not in action, (
                f"{logical_id}: wildcard action {action!r}"
            )
        if statement.get("Resource") == "*":
            # Only APIs without resource-level permissions may use "*".
            assert set(as_list(statement["Action"])) <= {"ec2:DescribeInstances"}, (
                f"{logical_id}: Resource '*' for {statement['Action']}"
            )
        assert statement["Effect"] == "Allow"
    assert checked > 20


def test_workers_are_only_terminated_and_launched_with_the_execution_tag():
    template = load_template()
    for logical_id, statement in iam_statements(template):
        actions = set(as_list(statement["Action"]))
        resources = json.dumps(statement.get("Resource"))
        if "ec2:TerminateInstances" in actions:
            assert "aws:ResourceTag/refresh:execution" in json.dumps(statement.get("Condition")), logical_id
        if "ec2:RunInstances" in actions and ":instance/" in resources:
            assert "aws:RequestTag/refresh:execution" in json.dumps(statement.get("Condition")), logical_id


def test_weekly_schedules_for_image_and_audio_in_both_environments():
    template = load_template()
    schedules = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    seen = set()
    for rule in schedules:
        assert rule["ScheduleExpression"] == "cron(0 0 ? * MON *)"
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": "DataRefreshStateMachine"}
        payload = json.loads(target["Input"])
        assert set(payload) == {"media_type", "environment", "wait_if_busy"}
        # Image and audio start together: the later one queues instead of being refused.
        assert payload["wait_if_busy"] is True
        seen.add((payload["media_type"], payload["environment"]))
    assert seen == {(m, e) for m in ("image", "audio") for e in ("staging", "production")}


def test_aborted_timed_out_and_failed_executions_trigger_cleanup():
    template = load_template()
    rule = template["Resources"]["FailedRunCleanupRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"ABORTED", "TIMED_OUT", "FAILED"}
    # Every machine: a stopped or timed-out worker-range execution never reaches its own
    # terminate state, so its event must terminate its worker too.
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": logical_id} for logical_id in DEFINITIONS]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["CleanupFunction", "Arn"]}


def user_data_script(template: dict, env: str) -> tuple[str, dict]:
    """The launch template's user data as Fn::Sub sees it, with the shared script (a
    Fn::FindInMap variable into the template's Mappings) put in place, and the other
    variables. Only ${WorkerScript} is resolved; the rest is left to Fn::Sub."""
    data = template["Resources"][f"WorkerLaunchTemplate{env}"]["Properties"]["LaunchTemplateData"]
    script, variables = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    variables = dict(variables)
    map_name, key, attribute = variables.pop("WorkerScript")["Fn::FindInMap"]
    body = template["Mappings"][map_name][key][attribute]
    assert isinstance(body, str)
    assert script.count("${WorkerScript}") == 1
    return script.replace("${WorkerScript}", body), variables


def test_launch_templates_start_the_worker_on_the_worker_port_only_from_the_functions():
    template = load_template()
    resources = template["Resources"]
    for env in ("Staging", "Production"):
        data = resources[f"WorkerLaunchTemplate{env}"]["Properties"]["LaunchTemplateData"]
        script, variables = user_data_script(template, env)
        assert script.startswith("#!")
        assert "INSTANCE_IP" in script and "WORKER_BINARY" in script
        assert variables["SecretId"] == {"Ref": f"{env}Secret"}
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    ingress = resources["WorkerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": {"Ref": "WorkerPort"},
            "ToPort": {"Ref": "WorkerPort"},
            "SourceSecurityGroupId": {"Ref": "FunctionsSecurityGroup"},
            "Description": ingress[0]["Description"],
        }
    ]


HEADER_END = "# ---- end of launch template settings\n"


def test_user_data_is_the_worker_crate_script_behind_the_template_settings():
    """The launch templates run crates/indexer-worker/user-data.sh verbatim, after a header of
    exports that Fn::Sub fills in (the script itself reads only its environment)."""
    script_file = ROOT / "crates" / "indexer-worker" / "user-data.sh"
    assert script_file.exists(), f"{script_file} is missing"
    shebang, body = script_file.read_text().split("\n", 1)
    assert "${" not in script_file.read_text(), "the worker script must not contain ${ (Fn::Sub would expand it)"
    template = load_template()
    for env in ("Staging", "Production"):
        script, _ = user_data_script(template, env)
        head, embedded = script.split(HEADER_END, 1)
        assert head.split("\n", 1)[0] == shebang
        assert embedded == body, f"{env}: the embedded user data differs from {script_file}; rebuild the template's copy"
        exported = set(re.findall(r"^export ([A-Z_0-9]+)=", head, flags=re.MULTILINE))
        assert {"WORKER_ARTIFACT", "REFRESH_SECRET_ID", "WORKER_PORT", "IDLE_SHUTDOWN_SECS"} <= exported


def test_the_two_launch_templates_differ_only_in_their_environment():
    """One definition in effect: with the environment's name blanked out, the staging and
    production launch templates are the same (same data, same user data, same exports)."""
    template = load_template()
    resources = template["Resources"]

    def normalized(env: str) -> str:
        text = json.dumps(resources[f"WorkerLaunchTemplate{env}"], sort_keys=True)
        assert env in text and env.lower() in text
        return text.replace(env, "<Env>").replace(env.lower(), "<env>")

    assert normalized("Staging") == normalized("Production")
    for env in ("Staging", "Production"):
        props = resources[f"WorkerLaunchTemplate{env}"]["Properties"]
        assert props["LaunchTemplateName"] == {"Fn::Sub": f"${{AWS::StackName}}-indexer-worker-{env.lower()}"}
        data = props["LaunchTemplateData"]
        assert data["InstanceType"] == {"Ref": f"WorkerInstanceType{env}"}
        assert data["TagSpecifications"][0]["Tags"] == [{"Key": "refresh:environment", "Value": env.lower()}]


# ---------------------------------------------------------------- definitions


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_definition_is_json_before_and_after_substitution(logical_id):
    text = DEFINITIONS[logical_id].read_text()
    json.loads(text)
    substituted = SUB_PATTERN.sub("1", text)
    definition = json.loads(substituted)
    assert definition["StartAt"] in definition["States"]


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_every_substitution_is_provided_and_every_provided_one_used(logical_id):
    template = load_template()
    provided = set(template["Resources"][logical_id]["Properties"]["DefinitionSubstitutions"])
    used = set(SUB_PATTERN.findall(DEFINITIONS[logical_id].read_text()))
    assert used - provided == set(), f"substitutions without a value: {used - provided}"
    assert provided - used == set(), f"substitutions the definition never uses: {provided - used}"


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_function_substitutions_name_architecture_lambdas(logical_id):
    template = load_template()
    resources = template["Resources"]
    subs = template["Resources"][logical_id]["Properties"]["DefinitionSubstitutions"]
    binaries = architecture_binaries()
    function_subs = {k: v for k, v in subs.items() if k.endswith("FunctionArn")}
    assert function_subs
    for key, value in function_subs.items():
        function_id = value["Fn::GetAtt"][0]
        assert key == function_id + "Arn"
        assert step_of(resources[function_id]) in binaries
    # The state machine may invoke exactly the functions its definition names.
    role_id = resources[logical_id]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invokable = {
        tuple(r["Fn::GetAtt"])
        for _, s in iam_statements({"Resources": {role_id: resources[role_id]}})
        if "lambda:InvokeFunction" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    }
    assert invokable == {(v["Fn::GetAtt"][0], "Arn") for v in function_subs.values()}


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_every_transition_targets_a_state_and_every_state_is_reachable(logical_id):
    definition = load_definition(logical_id)
    states = all_states(definition)

    def check_scope(scope_states: dict, start: str):
        reachable, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name in reachable:
                continue
            assert name in scope_states, f"transition to unknown state {name!r} (or across a Map boundary)"
            reachable.add(name)
            todo.extend(successors(scope_states[name]))
        assert reachable == set(scope_states), f"unreachable: {set(scope_states) - reachable}"

    check_scope(definition["States"], definition["StartAt"])
    for state in states.values():
        if state["Type"] == "Map":
            processor = state["ItemProcessor"]
            check_scope(processor["States"], processor["StartAt"])


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_every_task_retries_transient_errors_with_backoff_and_nothing_else(logical_id):
    states = all_states(load_definition(logical_id))
    tasks = {n: s for n, s in states.items() if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        retriers = task.get("Retry", [])
        assert retriers, f"{name}: no Retry"
        retried = {e for r in retriers for e in r["ErrorEquals"]}
        assert not retried & NEVER_RETRIED, f"{name} retries {retried & NEVER_RETRIED}"
        for r in retriers:
            assert r.get("BackoffRate", 1.0) > 1.0 and r.get("MaxAttempts", 3) >= 2, f"{name}: no back-off"
        if is_lambda_task(task):
            assert TRANSIENT_LAMBDA_ERRORS <= retried, f"{name} misses {TRANSIENT_LAMBDA_ERRORS - retried}"
        elif is_child_execution_task(task):
            assert retried <= START_EXECUTION_RETRIABLE, f"{name} retries {retried - START_EXECUTION_RETRIABLE}"
            assert "States.TaskFailed" not in retried, f"{name} would rerun a failed range"
        else:
            assert is_sdk_task(task), f"{name}: unknown resource {task['Resource']}"
            assert "States.TaskFailed" in retried, f"{name}: SDK errors are not retried"


# Tasks whose failure the run notes and goes on from, with why.
GOES_ON_AFTER_FAILURE = {
    "Delete old indices": "the site is fully promoted; an old index left behind is noted, not a failed refresh",
    "Validate foreign keys on a worker": "the site is promoted; keys that failed stay NOT VALID and the run ends failed after its report",
}


@pytest.mark.parametrize("logical_id", TOP_LEVEL)
def test_every_failure_after_the_concurrency_check_passes_cleanup(logical_id):
    definition = load_definition(logical_id)
    top = definition["States"]
    cleanup = CLEANUP_STATE[logical_id]
    cleanup_chain = {cleanup} | {
        # States between a Catch and the cleanup call, and the Fail after it.
        n
        for n in top
        if n != cleanup and paths_avoiding(top, n, {cleanup}) == [] and n not in PRE_RESOURCE_TASKS
    }
    checked = 0
    for name, state in top.items():
        if state["Type"] not in ("Task", "Map"):
            continue
        catch_all = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
        assert catch_all, f"{name}: no Catch for States.ALL"
        if name in PRE_RESOURCE_TASKS:
            for c in state["Catch"]:
                # Up to a renewed check (after waiting for the other run), nothing is cleaned up.
                refused_paths = paths_avoiding(top, c["Next"], PRE_RESOURCE_TASKS)
                assert refused_paths, f"{name}: a Catch path never ends"
                assert cleanup not in {p for path in refused_paths for p in path}, (
                    f"{name}: a refused run must not clean up (it would drop the running run's temp table)"
                )
            continue
        if name == cleanup or name in cleanup_chain or name in GOES_ON_AFTER_FAILURE:
            continue
        if is_notification(name, state):
            # A notification never fails the run: its Catch goes where its success would.
            assert all(c["Next"] == state["Next"] or top[c["Next"]]["Type"] == "Pass" for c in state["Catch"]), name
            continue
        for c in state["Catch"]:
            # A path back through the failed state is its retry loop (the roll-forward).
            bad = [p for p in paths_avoiding(top, c["Next"], {cleanup}) if name not in p]
            assert not bad, f"{name}: Catch path ends without cleanup: {bad}"
            checked += 1
    assert checked >= 5


def prepare_states(definition: dict) -> list[dict]:
    """The worker-range machine starts with a Choice between a range and a SQL job; each
    leads to a Pass that prepares the attempt's state."""
    states = definition["States"]
    start = states[definition["StartAt"]]
    assert start["Type"] == "Choice"
    return [states[c["Next"]] for c in start["Choices"]] + [states[start["Default"]]]


def test_every_worker_range_path_after_launch_terminates_its_worker():
    definition = load_definition(WORKER_RANGE)
    states = definition["States"]
    launches = [n for n, s in states.items() if s.get("Resource", "").endswith("ec2:runInstances")]
    terminates = {n for n, s in states.items() if s.get("Resource", "").endswith("ec2:terminateInstances")}
    assert len(launches) == 1 and len(terminates) == 1
    (launch,) = launches
    # Nothing before the launch can fail: the execution starts straight into it (through the
    # choice of a range or a SQL job and its Pass).
    for prepare in prepare_states(definition):
        assert prepare["Type"] == "Pass" and prepare["Next"] == launch
    # From a successful launch, every path to the end of the execution - success, task
    # error, time-out, Catch - passes the terminate state before it ends or launches again.
    bad = paths_avoiding(states, states[launch]["Next"], terminates | {launch})
    assert not bad, f"paths that leave a worker running: {bad}"
    # Every state after the launch catches everything (a missing Catch would end the
    # execution without terminating; the status change rule is the last resort).
    after_launch = reachable(states, states[launch]["Next"], {launch})
    for name in after_launch:
        state = states[name]
        if state["Type"] == "Task" and name not in terminates:
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name
    # A launch that failed retries or fails; it has nothing to terminate.
    for c in states[launch]["Catch"]:
        assert c["Next"] in states


def test_worker_range_retries_one_range_and_tags_its_workers_for_both_cleanups():
    states = load_definition(WORKER_RANGE)["States"]
    (launch,) = [n for n, s in states.items() if s.get("Resource", "").endswith("ec2:runInstances")]
    launch_params = states[launch]["Parameters"]
    tags = {t["Key"]: t.get("Value.$") for spec in launch_params["TagSpecifications"] for t in spec["Tags"]}
    assert {"refresh:execution", "refresh:range-execution", "refresh:media", "refresh:range", "Name"} <= set(tags)
    # refresh:execution is the data refresh execution (its cleanup and the IAM conditions
    # match it); refresh:range-execution is this execution (its own event's cleanup).
    prepares = prepare_states(load_definition(WORKER_RANGE))
    for prepare in (p["Parameters"] for p in prepares):
        assert prepare["execution_id.$"] == "$.root_execution_id" and tags["refresh:execution"] == "$.execution_id"
        assert prepare["range_execution_id.$"] == "$$.Execution.Id"
    assert tags["refresh:range-execution"] == "$.range_execution_id"
    # The retry of a range or job is a loop back to the launch, carrying both ids and the task.
    into_launch = [n for n, s in states.items() if launch in successors(s, follow_catch=False)]
    retries = [n for n in into_launch if states[n] not in prepares]
    assert retries, "a failed range is never retried on a fresh worker"
    for name in retries:
        assert {"execution_id.$", "range_execution_id.$", "range.$", "sql.$", "job.$", "label.$"} <= set(
            states[name]["Parameters"]
        ), name


def test_reindex_map_runs_one_worker_range_execution_per_range_at_most_worker_count_at_once():
    definition = load_definition("DataRefreshStateMachine")
    (reindex,) = [s for s in definition["States"].values() if s["Type"] == "Map"]
    assert reindex["MaxConcurrencyPath"] == "$.params.worker_count"
    assert reindex["ItemsPath"] == "$.plan.ranges"
    assert reindex["ItemSelector"]["execution_id.$"] == "$$.Execution.Id"
    processor = reindex["ItemProcessor"]
    states = processor["States"]
    start = states[processor["StartAt"]]
    assert start["Resource"] == START_RANGE_EXECUTION
    assert start["Parameters"]["StateMachineArn"] == "${WorkerRangeStateMachineArn}"
    child_input = start["Parameters"]["Input"]
    # The console links the child to its parent; the child tags its workers with the parent.
    assert child_input["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$"] == "$$.Execution.Id"
    assert child_input["root_execution_id.$"] == "$.execution_id"
    child = load_definition(WORKER_RANGE)
    (prepared,) = [p["Parameters"] for p in prepare_states(child) if "range.$" in p["Parameters"]]
    read = {v.removeprefix("$.").split(".")[0] for v in prepared.values() if isinstance(v, str) and v.startswith("$.")}
    assert read <= {k.removesuffix(".$") for k in child_input}, f"the child reads {read} of {set(child_input)}"
    # Deterministic, so a retried start joins the running child instead of starting another.
    assert "$.execution_id" in start["Parameters"]["Name.$"] and "$.range.range_index" in start["Parameters"]["Name.$"]
    # Every way the iteration ends is the child's output or a Fail (the Map's Catch cleans up).
    for name, state in states.items():
        if name != processor["StartAt"]:
            assert state["Type"] in ("Choice", "Pass", "Fail"), name
    fails = [s for s in states.values() if s["Type"] == "Fail"]
    assert {"$.child.execution.Error", "$.range_error.Error"} == {f["ErrorPath"] for f in fails}
    # What the Map keeps of each child is what the child outputs.
    (ends,) = [s for s in child["States"].values() if s.get("End") and "range.$" in s["Parameters"]]
    output = {k.removesuffix(".$") for k in ends["Parameters"]}
    kept = {p.removeprefix("$.Output.") for p in start["ResultSelector"].values() if p.startswith("$.Output.")}
    assert kept and kept <= output, f"the Map keeps {kept - output}, which the child does not output"


def test_alarm_actions_are_re_enabled_on_every_path_after_disabling():
    definition = load_definition("DataRefreshStateMachine")
    top = definition["States"]
    (disable,) = [n for n, s in top.items() if s.get("Resource", "").endswith("cloudwatch:disableAlarmActions")]
    enables = {n for n, s in top.items() if s.get("Resource", "").endswith("cloudwatch:enableAlarmActions")}
    assert len(enables) == 2

    def edges(state):
        # Once disabled, a Choice on the "disabled" flag always takes its true branch.
        if state["Type"] == "Choice" and any(
            c.get("Variable") == "$.alarms.actions.disabled" for c in state["Choices"]
        ):
            return [c["Next"] for c in state["Choices"] if c.get("BooleanEquals") is True]
        return successors(state)

    bad = paths_avoiding(top, top[disable]["Next"], enables, edges=edges)
    assert not bad, f"paths that leave alarm actions disabled: {bad}"
    for c in top[disable]["Catch"]:
        assert c["Next"] == CLEANUP_STATE["DataRefreshStateMachine"] or c["Next"] in top


@pytest.mark.parametrize("logical_id", DEFINITIONS)
def test_every_polling_loop_is_bounded(logical_id):
    """Every cycle except the copy loop (it ends when copy_data reports done) passes a
    counter increment and a Choice comparing that counter with a limit."""
    definition = load_definition(logical_id)
    states = all_states(definition)
    graph = {n: [m for m in successors(s, follow_catch=False) if m in states] for n, s in states.items()}
    # Tarjan's strongly connected components.
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            sccs.append(component)

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            connect(v)
    loops = [c for c in sccs if len(c) > 1]
    assert loops
    for loop in loops:
        # The copy loop ends by progress: each call copies rows.
        if any(states[n].get("Resource", "").startswith("${CopyData") for n in loop):
            continue
        increments = [n for n in loop if "States.MathAdd" in json.dumps(states[n].get("Parameters", {}))]
        limits = [
            n
            for n in loop
            if states[n]["Type"] == "Choice"
            and any(
                "NumericLessThanPath" in json.dumps(c) and c.get("Next") in loop for c in states[n]["Choices"]
            )
        ]
        assert increments and limits, f"unbounded loop: {sorted(loop)}"


@pytest.mark.parametrize("logical_id", TOP_LEVEL)
def test_validation_gets_the_execution_id_and_start_time(logical_id):
    text = DEFINITIONS[logical_id].read_text()
    definition = json.loads(text)
    states = all_states(definition)
    (validate,) = [n for n, s in states.items() if s.get("Resource") == "${ValidateInputFunctionArn}"]
    assert states[validate]["ResultPath"] == "$.params"
    assert '"execution_id.$": "$$.Execution.Id"' in text
    assert '"start_time.$": "$$.Execution.StartTime"' in text


def test_lambda_tasks_only_pass_documented_fields():
    """Task inputs use the field names of docs/ARCHITECTURE.md's table (extra fields would be
    rejected by handlers that deny unknown fields)."""
    allowed = {
        "CheckConcurrency": {"params", "execution_id", "state_machine_arns"},
        # + params on every step that reaches a database or Elasticsearch: the environment
        # selects the secret (staging can never read production's connections).
        "CountDocuments": {"alias_or_index", "params"},
        "CopyData": {"params", "cursor", "defer_finish"},
        "FilterTags": {"params"},
        "CreateIndex": {"params", "filtered"},
        "PlanRanges": {"params"},
        "CheckWorker": {"ip"},
        "StartReindexTask": {"ip", "params", "range", "sql"},
        # + params: the environment selects the secret with the worker token.
        "GetReindexTask": {"ip", "task_id", "params", "job"},
        "FinishIndex": {"index", "params"},
        "CheckIndexHealth": {"index", "params"},
        "StartFilteredReindex": {"params", "source_index"},
        "GetEsTask": {"task_id", "params"},
        "VerifyFilteredIndex": {"params"},
        "CheckRecordDrop": {"params", "before", "new_index"},
        "CheckSearchGuard": {"params"},
        "PreflightPromotion": {"params"},
        "PromoteTable": {"params"},
        # Names only: it is also the operator's finish, typed by hand.
        "PromoteAliases": {"media_type", "environment", "index", "filtered_index"},
        "PromoteAlias": {"alias", "index", "params"},
        "DeleteIndices": {"indices", "params", "failed_execution"},
        # Counts the live alias and the new index itself: no per-source list in the state.
        "Report": {"params", "new_index", "guards"},
        "Cleanup": {"params", "execution_id"},
    }
    # Only a failure path names its execution, for the notice's failed state.
    optional = {"DeleteIndices": {"failed_execution"}}
    for logical_id in DEFINITIONS:
        for name, state in all_states(load_definition(logical_id)).items():
            if not is_lambda_task(state) or state["Resource"] == "${ValidateInputFunctionArn}":
                continue
            function = state["Resource"][2 : -len("FunctionArn}")]
            fields = {k.removesuffix(".$") for k in state["Parameters"]}
            required = allowed[function] - optional.get(function, set())
            assert required <= fields <= allowed[function], f"{logical_id}/{name}: {fields} != {allowed[function]}"


def test_definitions_are_not_edited_by_the_tests():
    # Guard for the helpers above: they must never mutate what they read.
    before = {k: v.read_text() for k, v in DEFINITIONS.items()}
    definition = load_definition("DataRefreshStateMachine")
    copy.deepcopy(all_states(definition))
    assert before == {k: v.read_text() for k, v in DEFINITIONS.items()}
    assert os.access(TEMPLATE, os.R_OK)


# ---------------------------------------------------------------- IAM resource scoping

# Parameters that name one specific resource the operator gives the stack (its bucket, key,
# AMI): an ARN built from them is as narrow as the deployment allows.
NAMED_RESOURCE_PARAMETERS = {
    "WorkerArtifactBucket", "WorkerArtifactKey", "SensitiveTermsBucket", "WorkerAmiId",
    # The operator's secret of the chat webhook, by its ARN.
    "ChatWebhookSecretArn",
}
# Pseudo parameters that only place an ARN (partition, region, account): they scope nothing.
PLACING_PSEUDO_PARAMETERS = {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix"}
EC2_ARN = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
STACK_EXECUTIONS = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-data-refresh:*"


def _tag_condition_on_stack_executions(condition: dict, key: str) -> bool:
    values = as_list((condition or {}).get("StringLike", {}).get(key, []))
    return bool(values) and all(
        isinstance(v, dict) and v.get("Fn::Sub") == STACK_EXECUTIONS for v in values
    )


# What AWS does not let a policy scope to the stack's own names, each with why, and what
# must hold instead (a predicate over the statement's Condition). Anything else unscoped fails.
UNSCOPABLE = [
    # No resource-level permissions at all: the API only accepts "*".
    ({"ec2:DescribeInstances"}, "*", lambda condition: True),
    # An instance's id is unknown before launch: the instance ARN is "any instance", narrowed
    # by the tag the launch must carry (this stack's data-refresh executions).
    ({"ec2:RunInstances"}, EC2_ARN + "instance/*",
     lambda c: _tag_condition_on_stack_executions(c, "aws:RequestTag/refresh:execution")),
    # ...and termination is narrowed by the tag the instance carries.
    ({"ec2:TerminateInstances"}, EC2_ARN + "instance/*",
     lambda c: _tag_condition_on_stack_executions(c, "aws:ResourceTag/refresh:execution")),
    # RunInstances is also authorised on every resource the launch creates or uses: volumes and
    # network interfaces (created by the launch, no id yet), and the subnet and security group
    # the launch template picks (optional parameters, absent without a VPC). The launch itself
    # is bounded by the launch template ARNs and the instance tag condition above.
    ({"ec2:RunInstances"}, EC2_ARN + "volume/*", lambda c: True),
    ({"ec2:RunInstances"}, EC2_ARN + "network-interface/*", lambda c: True),
    ({"ec2:RunInstances"}, EC2_ARN + "subnet/*", lambda c: True),
    ({"ec2:RunInstances"}, EC2_ARN + "security-group/*", lambda c: True),
    # Tags only as part of RunInstances (on the resources it creates, whose ids are unknown).
    *[({"ec2:CreateTags"}, EC2_ARN + kind, lambda c: c == {"StringEquals": {"ec2:CreateAction": "RunInstances"}})
      for kind in ("instance/*", "volume/*", "network-interface/*")],
    # startExecution.sync:2 waits on the child through an EventBridge rule that Step Functions
    # creates and names; AWS documents this exact ARN for the .sync integration.
    ({"events:PutTargets", "events:PutRule", "events:DescribeRule"},
     "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
     lambda c: True),
    # AlarmNames is a list parameter; CloudFormation cannot prefix each name into an ARN
    # (Fn::Join takes a literal delimiter). Only in the template when alarms are configured.
    ({"cloudwatch:DisableAlarmActions", "cloudwatch:EnableAlarmActions"},
     "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*", lambda c: True),
]


def _resource_entries(resource):
    """The entries of a statement's Resource, both branches of an Fn::If included."""
    for entry in as_list(resource):
        if isinstance(entry, dict) and "Fn::If" in entry:
            for branch in entry["Fn::If"][1:]:
                yield from _resource_entries(branch)
        elif isinstance(entry, dict) and entry.get("Ref") == "AWS::NoValue":
            continue
        else:
            yield entry


def _scoped(entry, template: dict) -> bool:
    """A Ref/GetAtt of the template's own resource, or an ARN whose first variable part that
    is not the partition/region/account is the stack name, a resource of the template or a
    named-resource parameter, placed before any wildcard."""
    resources = template["Resources"]
    if isinstance(entry, dict) and set(entry) == {"Ref"}:
        return entry["Ref"] in resources or entry["Ref"] in NAMED_RESOURCE_PARAMETERS
    if isinstance(entry, dict) and set(entry) == {"Fn::GetAtt"}:
        target = entry["Fn::GetAtt"]
        target = target.split(".")[0] if isinstance(target, str) else target[0]
        return target in resources
    if isinstance(entry, dict) and set(entry) == {"Fn::Sub"}:
        sub = entry["Fn::Sub"]
        text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        if any(not _scoped(value, template) for value in variables.values()):
            return False
        for match in SUB_PATTERN.finditer(text.replace("${AWS::", "${AWS__")):
            name = match.group(1).replace("AWS__", "AWS::")
            if name in PLACING_PSEUDO_PARAMETERS:
                continue
            scoping = (name == "AWS::StackName" or name in resources or name in variables
                       or name in NAMED_RESOURCE_PARAMETERS)
            return scoping and "*" not in text[: match.start()]
        return False
    return False


def unscoped_iam_resources(template: dict) -> list[str]:
    """Every (policy, actions, resource) that is neither scoped to the stack's own names nor an
    allowed exception with its condition."""
    found = []
    for logical_id, statement in iam_statements(template):
        if "Resource" not in statement:
            # Trust policies: a principal, no resource.
            assert "Principal" in statement, f"{logical_id}: statement without Resource: {statement}"
            continue
        actions = set(as_list(statement["Action"]))
        for entry in _resource_entries(statement["Resource"]):
            if _scoped(entry, template):
                continue
            text = entry.get("Fn::Sub") if isinstance(entry, dict) else entry
            allowed = any(
                actions <= allowed_actions and text == pattern and check(statement.get("Condition"))
                for allowed_actions, pattern, check in UNSCOPABLE
            )
            if not allowed:
                found.append(f"{logical_id} {statement.get('Sid', '')} {sorted(actions)}: {entry!r}")
    return found


def _statement(template: dict, sid: str) -> dict:
    """The first statement with this Sid (InvokeSteps is in both state machines' roles)."""
    matches = [s for _, s in iam_statements(template) if s.get("Sid") == sid]
    assert matches, f"no statement {sid}"
    return matches[0]


def test_every_iam_resource_is_scoped_to_the_stacks_own_names():
    template = load_template()
    assert unscoped_iam_resources(template) == []
    # The check reads real statements: every policy of the template, with resources.
    with_resources = [s for _, s in iam_statements(template) if "Resource" in s]
    assert len(with_resources) >= 15


@pytest.mark.parametrize(
    "sid, mutation",
    [
        # A wildcard resource on an action that can be scoped.
        ("ReadRefreshSecrets", lambda s: s.update(Resource="*")),
        ("InvokeSteps", lambda s: s.update(Resource="*")),
        # Another stack's state machine, by literal name.
        ("ListRunningExecutions", lambda s: s["Resource"].append(
            {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:other-stack-data-refresh"})),
        # Another stack's secret, by literal ARN.
        ("ReadRefreshSecrets", lambda s: s.update(
            Resource=["arn:aws:secretsmanager:us-east-1:123456789012:secret:other-stack/staging-AbCdEf"])),
        # Every log group of the account.
        ("Logs", lambda s: s.update(Resource=[
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}])),
        # A wildcard before the stack name matches other stacks' names too.
        ("Logs", lambda s: s.update(Resource=[
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*${AWS::StackName}"}])),
        # An allowed exception loses the condition that narrows it.
        ("TerminateOwnWorkers", lambda s: s.pop("Condition")),
        ("LaunchTaggedWorkers", lambda s: s["Condition"]["StringLike"].update(
            {"aws:RequestTag/refresh:execution": {"Fn::Sub": STACK_EXECUTIONS.replace("${AWS::StackName}", "other-stack")}})),
        # An exception's resource with an action it does not allow.
        ("WatchWorkers", lambda s: s.update(Action=["ec2:DescribeInstances", "ec2:StopInstances"])),
        # A Ref to something that is not one of the template's resources.
        ("PassWorkerRole", lambda s: s.update(Resource={"Ref": "AWS::StackName"})),
        # .sync may touch only the rule Step Functions manages, and start only this stack's
        # worker-range executions.
        ("SyncOnRangeExecutions", lambda s: s.update(Resource={
            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"})),
        ("StartRangeExecutions", lambda s: s.update(Resource={
            "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:*"})),
        ("StopLeftoverRangeExecutions", lambda s: s.update(Resource={
            "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:*"})),
    ],
)
def test_the_scope_check_fails_on_an_unscoped_or_foreign_resource(sid, mutation):
    template = copy.deepcopy(load_template())
    mutation(_statement(template, sid))
    found = unscoped_iam_resources(template)
    assert found, f"mutating {sid} went unnoticed"
    assert any(sid in line for line in found), found
