"""The host Lambda executor: a Rust provided.al2023 function run as a host process."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import wait_until


def invoke(aws, arn: str, event: dict, tail: bool = False) -> tuple[dict, dict]:
    kwargs = {"LogType": "Tail"} if tail else {}
    response = aws("lambda").invoke(FunctionName=arn, Payload=json.dumps(event).encode(), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def test_echo_returns_the_event(aws, make_function):
    arn = make_function()
    response, body = invoke(aws, arn, {"action": "echo", "payload": {"n": 42}})
    assert "FunctionError" not in response, body
    assert body["echo"] == {"n": 42}
    assert body["request_id"]


def test_function_gets_its_environment_and_not_localstacks(aws, make_function, endpoint):
    arn = make_function(environment={"PROBE_SETTING": "from-function-config"})
    names = ["_HANDLER", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "PROBE_SETTING",
             "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "FILESYSTEM_ROOT", "GATEWAY_LISTEN",
             "SERVICES"]
    response, body = invoke(aws, arn, {"action": "env", "names": names})
    assert "FunctionError" not in response, body
    env = body["env"]
    assert env["_HANDLER"] == "probe.handler"
    assert env["AWS_ENDPOINT_URL"] == endpoint
    assert env["AWS_REGION"] == aws("lambda").meta.region_name
    assert env["AWS_ACCESS_KEY_ID"]
    assert env["PROBE_SETTING"] == "from-function-config"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["LAMBDA_TASK_ROOT"]
    # LocalStack's own settings stay out of the function's environment.
    assert env["FILESYSTEM_ROOT"] is None
    assert env["GATEWAY_LISTEN"] is None
    assert env["SERVICES"] is None


def test_handled_error_keeps_its_type_name(aws, make_function):
    arn = make_function()
    response, body = invoke(aws, arn, {"action": "error", "message": "bad thing"})
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorType": "ProbeError", "errorMessage": "bad thing"}


def test_timeout_kills_the_process_and_the_next_invocation_starts_fresh(aws, make_function):
    arn = make_function(timeout=1)
    _, first = invoke(aws, arn, {"action": "echo"})
    response, body = invoke(aws, arn, {"action": "sleep", "seconds": 30})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    response, after = invoke(aws, arn, {"action": "echo"})
    assert "FunctionError" not in response, after
    assert after["pid"] != first["pid"], "a timed-out process must not serve again"


def test_crash_is_a_function_error_with_the_log_tail(aws, make_function):
    arn = make_function()
    response, body = invoke(aws, arn, {"action": "crash", "code": 3})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in body["errorMessage"]
    assert "crashing on purpose with exit code 3" in body["errorMessage"]
    response, after = invoke(aws, arn, {"action": "echo", "payload": "again"})
    assert "FunctionError" not in response, after
    assert after["echo"] == "again"


def test_each_invocation_gets_only_its_own_log_lines(aws, make_function):
    arn = make_function()
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    invoke(aws, arn, {"action": "log", "lines": [first]})
    response, _ = invoke(aws, arn, {"action": "log", "lines": [second]}, tail=True)
    tail = base64.b64decode(response["LogResult"]).decode()
    assert second in tail
    assert first not in tail
    assert "START RequestId:" in tail and "END RequestId:" in tail

    # Both reach CloudWatch Logs, each once.
    logs = aws("logs")
    group = f"/aws/lambda/{arn.split(':')[-1]}"

    def messages():
        events = logs.filter_log_events(logGroupName=group)["events"]
        text = [event["message"] for event in events]
        return text if any(second in m for m in text) and any(first in m for m in text) else None

    text = wait_until(messages, timeout_s=20, what="the invocations' lines in CloudWatch Logs")
    assert sum(first in m for m in text) == 1
    assert sum(second in m for m in text) == 1


def test_concurrent_invocations_run_in_separate_processes(aws, make_function):
    arn = make_function()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: invoke(aws, arn, {"action": "sleep", "seconds": 2}),
                                range(4)))
    for response, body in results:
        assert "FunctionError" not in response, body
    # LocalStack starts another environment only while the others are busy: several
    # process ids mean the invocations overlapped.
    assert len({body["pid"] for _, body in results}) >= 2


def test_step_functions_task_success_catch_timeout_and_crash(aws, make_function):
    arn = make_function(timeout=1)
    sfn = aws("stepfunctions")
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task", "Resource": arn, "ResultPath": "$.result", "End": True,
                "Catch": [
                    {"ErrorEquals": ["ProbeError"], "ResultPath": "$.error", "Next": "CaughtProbeError"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CaughtOther"},
                ],
            },
            "CaughtProbeError": {"Type": "Pass", "Result": "probe", "ResultPath": "$.caught", "End": True},
            "CaughtOther": {"Type": "Pass", "Result": "other", "ResultPath": "$.caught", "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name=f"probe-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
        roleArn="arn:aws:iam::000000000000:role/probe-sfn-role")["stateMachineArn"]

    def run(event: dict) -> dict:
        execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(event))["executionArn"]
        done = wait_until(lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
                          timeout_s=60, what="the execution to end")
        assert done["status"] == "SUCCEEDED", done
        return json.loads(done["output"])

    try:
        ok = run({"action": "echo", "payload": "hi"})
        assert ok["result"]["echo"] == "hi" and "caught" not in ok

        handled = run({"action": "error", "message": "expected"})
        assert handled["caught"] == "probe"
        assert handled["error"]["Error"] == "ProbeError"

        # The 1 s timeout is enforced, shown by order rather than by a clock: a run whose
        # function sleeps 30 s has ended before a reference function's 8 s sleep, started
        # after it, returns; and its history has no successful call.
        reference = make_function(timeout=60)
        execution = sfn.start_execution(stateMachineArn=machine,
                                        input=json.dumps({"action": "sleep", "seconds": 30}))["executionArn"]
        response, slept = invoke(aws, reference, {"action": "sleep", "seconds": 8})
        assert "FunctionError" not in response and slept["slept"] == 8, slept
        status = sfn.describe_execution(executionArn=execution)["status"]
        assert status != "RUNNING", "the 1 s timeout was not enforced: still running after an 8 s sleep"
        assert status == "SUCCEEDED", status
        timed_out = json.loads(sfn.describe_execution(executionArn=execution)["output"])
        assert timed_out["caught"] == "other"
        assert timed_out["error"]["Error"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in timed_out["error"]["Cause"]
        events = [e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]]
        assert "LambdaFunctionSucceeded" not in events, events
        assert events.index("TaskStateEntered") < events.index("PassStateEntered"), events

        crashed = run({"action": "crash", "code": 4})
        assert crashed["caught"] == "other"
        assert crashed["error"]["Error"] == "Runtime.ExitError"
        assert "exit status 4" in crashed["error"]["Cause"]
    finally:
        sfn.delete_state_machine(stateMachineArn=machine)


def test_bootstrap_from_a_local_path(aws, probe_binary, tmp_path):
    """LocalStack's hot-reload code: the function runs the bootstrap from a host folder."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "bootstrap").symlink_to(probe_binary)
    lam = aws("lambda")
    name = f"probe-local-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Handler="probe.handler",
                        Role="arn:aws:iam::000000000000:role/probe-lambda-role",
                        Code={"S3Bucket": "hot-reload", "S3Key": str(code)})
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        response, body = invoke(aws, name, {"action": "env", "names": ["LAMBDA_TASK_ROOT"]})
        assert "FunctionError" not in response, body
        assert body["env"]["LAMBDA_TASK_ROOT"] == str(code)
    finally:
        lam.delete_function(FunctionName=name)
