"""EC2 instances as host processes: user data serving HTTP on the instance's loopback address,
launch templates (EC2 API and CloudFormation), termination that leaves nothing running."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import wait_until

PORT = 18003
USER_DATA = f"""#!/bin/bash
echo "boot $INSTANCE_ID on $INSTANCE_IP"
mkdir -p "$HOME/www" && env > "$HOME/www/env.txt"
cd "$HOME/www" && exec python3 -m http.server {PORT} --bind "$INSTANCE_IP"
"""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(ip: str, path: str = "/") -> str | None:
    try:
        with NO_PROXY.open(f"http://{ip}:{PORT}{path}", timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def describe(ec2, ids: list[str]) -> list[dict]:
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def processes_under(folder: Path) -> list[int]:
    """Pids whose working directory is inside `folder` (the instances' folders)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def ec2_dir() -> Path:
    return Path(os.environ.get("DATA_REFRESH_LOCAL", ".local")) / "data" / "ec2"


def assert_gone(ec2, ids: list[str], ips: list[str]) -> None:
    wait_until(lambda: all(i["State"]["Name"] == "terminated" for i in describe(ec2, ids)),
               timeout_s=30, what="the instances to be terminated")
    for ip in ips:
        assert http_get(ip) is None, f"{ip} still answers after termination"
    for instance_id in ids:
        assert processes_under(ec2_dir() / instance_id) == []


@pytest.fixture
def terminate_later(aws):
    ids: list[str] = []
    yield ids
    if ids:
        aws("ec2").terminate_instances(InstanceIds=ids)


def test_instances_from_a_launch_template_serve_http_on_their_loopback_address(aws, endpoint, terminate_later):
    ec2 = aws("ec2")
    name = f"worker-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": "ami-12345678", "InstanceType": "t3.micro",
        "UserData": base64.b64encode(USER_DATA.encode()).decode()})
    try:
        reservation = ec2.run_instances(MinCount=2, MaxCount=2,
                                        LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"})
        ids = [i["InstanceId"] for i in reservation["Instances"]]
        terminate_later.extend(ids)
        assert {i["State"]["Name"] for i in reservation["Instances"]} == {"pending"}

        running = wait_until(lambda: (d := describe(ec2, ids)) and all(i["State"]["Name"] == "running" for i in d) and d,
                             timeout_s=20, what="the instances to run")
        ips = [i["PrivateIpAddress"] for i in running]
        assert len(set(ips)) == 2
        for ip in ips:
            address = ipaddress.ip_address(ip)
            assert address.is_loopback and ip.startswith("127.0.") and ip != "127.0.0.1"

        for instance, ip in zip(running, ips):
            env_text = wait_until(lambda: http_get(ip, "/env.txt"), timeout_s=20,
                                  what=f"HTTP on {ip}:{PORT}")
            env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
            assert env["INSTANCE_ID"] == instance["InstanceId"]
            assert env["INSTANCE_IP"] == ip
            assert env["AWS_ENDPOINT_URL"] == endpoint
            assert env["AWS_ACCESS_KEY_ID"] == "test"
            # A clean environment: none of LocalStack's own settings.
            for name_ in ("FILESYSTEM_ROOT", "GATEWAY_LISTEN", "SERVICES", "LAMBDA_RUNTIME_EXECUTOR"):
                assert name_ not in env

        console = ec2.get_console_output(InstanceId=ids[0])["Output"]
        assert f"boot {ids[0]} on {ips[0]}" in console

        ec2.terminate_instances(InstanceIds=ids)
        assert_gone(ec2, ids, ips)
    finally:
        ec2.delete_launch_template(LaunchTemplateName=name)


def test_run_instances_with_direct_user_data(aws, terminate_later):
    ec2 = aws("ec2")
    reservation = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                    InstanceType="t3.micro", UserData=USER_DATA)
    instance_id = reservation["Instances"][0]["InstanceId"]
    terminate_later.append(instance_id)
    ip = describe(ec2, [instance_id])[0]["PrivateIpAddress"]
    assert ipaddress.ip_address(ip).is_loopback
    assert wait_until(lambda: http_get(ip, "/env.txt"), timeout_s=20, what=f"HTTP on {ip}")
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert_gone(ec2, [instance_id], [ip])


def test_an_instance_stays_pending_while_the_boot_delay_file_holds_it(aws, terminate_later):
    # The e2e test of an instance that never starts writes this file; it must also be
    # terminable while pending, with its user data's processes gone.
    ec2 = aws("ec2")
    knob = ec2_dir() / "boot-delay-seconds"
    knob.parent.mkdir(parents=True, exist_ok=True)
    knob.write_text("3600")
    try:
        reservation = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                        InstanceType="t3.micro", UserData=USER_DATA)
    finally:
        knob.unlink()
    instance_id = reservation["Instances"][0]["InstanceId"]
    terminate_later.append(instance_id)
    ip = describe(ec2, [instance_id])[0]["PrivateIpAddress"]
    # The default boot delay is 0.5 s; twice that and more, it is still pending.
    wait_until(lambda: http_get(ip, "/env.txt"), timeout_s=20, what=f"HTTP on {ip}")
    assert describe(ec2, [instance_id])[0]["State"]["Name"] == "pending"
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert_gone(ec2, [instance_id], [ip])


def test_cloudformation_creates_updates_and_deletes_a_real_launch_template(aws, terminate_later):
    cfn, ec2 = aws("cloudformation"), aws("ec2")
    stack = f"lt-{uuid.uuid4().hex[:8]}"
    template_name = f"{stack}-workers"

    def template(marker: str) -> str:
        user_data = USER_DATA.replace("echo \"boot", f"echo \"{marker}")
        return json.dumps({
            "Resources": {"Workers": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {
                "LaunchTemplateName": template_name,
                "LaunchTemplateData": {"ImageId": "ami-12345678", "InstanceType": "t3.micro",
                                       "UserData": base64.b64encode(user_data.encode()).decode()}}}},
            "Outputs": {"TemplateId": {"Value": {"Ref": "Workers"}},
                        "Version": {"Value": {"Fn::GetAtt": ["Workers", "LatestVersionNumber"]}}},
        })

    def deploy(action, marker: str) -> dict:
        action(StackName=stack, TemplateBody=template(marker))
        done = wait_until(lambda: (s := cfn.describe_stacks(StackName=stack)["Stacks"][0])["StackStatus"].endswith(("COMPLETE", "FAILED")) and s,
                          timeout_s=60, what="the stack operation")
        assert done["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), done
        return {o["OutputKey"]: o["OutputValue"] for o in done.get("Outputs", [])}

    outputs = deploy(cfn.create_stack, "first")
    try:
        described = ec2.describe_launch_templates(LaunchTemplateNames=[template_name])["LaunchTemplates"]
        assert described[0]["LaunchTemplateId"] == outputs["TemplateId"]
        assert outputs["TemplateId"].startswith("lt-")

        outputs = deploy(cfn.update_stack, "second")
        assert outputs["Version"] == "2"
        version = ec2.describe_launch_template_versions(
            LaunchTemplateName=template_name, Versions=["$Default"])["LaunchTemplateVersions"][0]
        assert version["VersionNumber"] == 2
        data = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
        assert "echo \"second" in data

        reservation = ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={
            "LaunchTemplateName": template_name, "Version": "$Default"})
        instance_id = reservation["Instances"][0]["InstanceId"]
        terminate_later.append(instance_id)
        ip = reservation["Instances"][0]["PrivateIpAddress"]
        assert wait_until(lambda: http_get(ip, "/env.txt"), timeout_s=20, what=f"HTTP on {ip}")
        console = wait_until(lambda: ec2.get_console_output(InstanceId=instance_id).get("Output"),
                             timeout_s=10, what="console output")
        assert f"second {instance_id}" in console
        ec2.terminate_instances(InstanceIds=[instance_id])
        assert_gone(ec2, [instance_id], [ip])
    finally:
        cfn.delete_stack(StackName=stack)
        wait_until(lambda: not ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [template_name]}])["LaunchTemplates"],
            timeout_s=60, what="the launch template to be deleted with its stack")
