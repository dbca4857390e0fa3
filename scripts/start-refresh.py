#!/usr/bin/env python3
"""Starts data refresh executions in the deployed stack and follows them to the end.

Prints each state as it is entered (with the reindex progress the workers report, from the
worker-range execution each range runs in) and a summary per execution; exits non-zero unless
every execution SUCCEEDED.
Run with the LocalStack venv's Python (it has boto3), after `. .local/env` and
`. .local/stack.env`:

    start-refresh.py --media image --media audio --environment staging [--suffix init]
        [--allow-concurrent | --wait-if-busy] [--override-record-drop] [--timeout 1800]
"""
import argparse
import json
import os
import sys
import time

import boto3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", action="append", choices=["image", "audio"], required=True)
    parser.add_argument("--environment", choices=["staging", "production"], default="staging")
    parser.add_argument("--suffix", help="index suffix (default: generated from the start time)")
    parser.add_argument("--allow-concurrent", action="store_true")
    parser.add_argument("--wait-if-busy", action="store_true",
                        help="queue behind a run holding the environment instead of being refused")
    parser.add_argument("--override-record-drop", action="store_true")
    parser.add_argument("--skip-copy", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds to wait for all executions")
    parser.add_argument("--state-machine-arn", default=os.environ.get("DATA_REFRESH_STATE_MACHINE_ARN"))
    args = parser.parse_args()
    if not args.state_machine_arn:
        parser.error("no state machine: pass --state-machine-arn or source .local/stack.env")
    return args


def describe_event(event):
    kind = event["type"]
    if kind.endswith("StateEntered"):
        return f"→ {event['stateEnteredEventDetails']['name']}"
    if kind in ("TaskSucceeded", "LambdaFunctionSucceeded"):
        details = event.get("taskSucceededEventDetails") or event.get("lambdaFunctionSucceededEventDetails", {})
        output = details.get("output", "")
        try:
            payload = json.loads(output)
        except ValueError:
            return None
        if isinstance(payload, dict) and "progress" in payload:
            return f"  worker task {payload.get('task_id', '?')}: {payload['progress']:.1f}% ({payload.get('indexed', 0)} indexed)"
        return None
    if kind in ("TaskFailed", "LambdaFunctionFailed", "ExecutionFailed"):
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
        return f"  ✗ {details.get('error', '')}: {details.get('cause', '')[:300]}"
    return None


def started_child(event):
    """The worker-range execution a TaskSubmitted event of startExecution.sync:2 started."""
    if event["type"] != "TaskSubmitted":
        return None
    details = event.get("taskSubmittedEventDetails", {})
    if details.get("resourceType") != "states":
        return None
    try:
        return json.loads(details.get("output") or "{}").get("ExecutionArn")
    except ValueError:
        return None


def new_events(sfn, arn, seen):
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events[seen:], len(events)


def main():
    args = parse_args()
    sfn = boto3.client("stepfunctions")
    started = {}
    for media in args.media:
        execution_input = {"media_type": media, "environment": args.environment,
                           "allow_concurrent": args.allow_concurrent,
                           "wait_if_busy": args.wait_if_busy,
                           "override_record_drop": args.override_record_drop,
                           "skip_copy": args.skip_copy}
        if args.suffix:
            execution_input["index_suffix"] = args.suffix
        arn = sfn.start_execution(stateMachineArn=args.state_machine_arn,
                                  name=f"{media}-{args.environment}-{int(time.time())}",
                                  input=json.dumps(execution_input))["executionArn"]
        print(f"[{media}] started {arn}", flush=True)
        started[media] = {"arn": arn, "seen": 0, "status": "RUNNING", "children": {}}

    deadline = time.time() + args.timeout
    while any(e["status"] == "RUNNING" for e in started.values()) and time.time() < deadline:
        for media, execution in started.items():
            if execution["status"] != "RUNNING":
                continue
            events, execution["seen"] = new_events(sfn, execution["arn"], execution["seen"])
            for event in events:
                line = describe_event(event)
                if line:
                    print(f"[{media}] {line}", flush=True)
                child = started_child(event)
                if child:
                    execution["children"].setdefault(child, 0)
            # Each range runs (and reports its worker's progress) in its own execution.
            for child, seen in execution["children"].items():
                events, execution["children"][child] = new_events(sfn, child, seen)
                label = child.rsplit("-", 2)[-2:]
                for event in events:
                    line = describe_event(event)
                    if line:
                        print(f"[{media} {'-'.join(label)}] {line}", flush=True)
            execution["status"] = sfn.describe_execution(executionArn=execution["arn"])["status"]
        time.sleep(1)

    ok = True
    for media, execution in started.items():
        description = sfn.describe_execution(executionArn=execution["arn"])
        status = description["status"]
        print(f"[{media}] {status}")
        if status == "SUCCEEDED":
            # The execution's output is the report of step 12 (counts before/after per source).
            print(json.dumps(json.loads(description.get("output") or "{}"), indent=2))
        else:
            ok = False
            if status == "RUNNING":
                print(f"[{media}] still running after {args.timeout}s; stopping it")
                sfn.stop_execution(executionArn=execution["arn"], cause="start-refresh.py timed out")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
