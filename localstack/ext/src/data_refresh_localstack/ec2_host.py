"""EC2 instances as host processes.

LocalStack serves the EC2 API from moto, where instances are records only. Patched here:

- RunInstances (direct parameters or a launch template) runs each instance's user data as
  a host process group, bound by convention to a unique loopback address 127.0.x.y (in
  $INSTANCE_IP), which DescribeInstances reports as PrivateIpAddress. No private-range
  address is ever used. States move pending -> running, after DATA_REFRESH_EC2_BOOT_DELAY
  seconds, or after the seconds written in <DATA_REFRESH_EC2_DIR>/boot-delay-seconds while
  that file exists (tests hold instances in pending, as a launch that never starts would).
- Terminate/Stop kill the instance's whole process group (shutting-down -> terminated,
  stopping -> stopped). LocalStack's shutdown kills every instance.
- The user data runs with a clean environment: INSTANCE_ID, INSTANCE_IP, the LocalStack
  endpoint, region and dummy credentials, a standard PATH — not LocalStack's environment.
  Names listed in DATA_REFRESH_EC2_PASS_ENV are passed through from LocalStack's.
- Its output goes to <DATA_REFRESH_EC2_DIR>/<instance-id>/console.log, which
  GetConsoleOutput returns.
- Gzip-compressed and multipart MIME user data (text/x-shellscript parts) are supported.
"""

from __future__ import annotations

import base64
import email
import gzip
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from localstack import config

from . import procs

LOG = logging.getLogger(__name__)

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONSOLE_OUTPUT_MAX_BYTES = 64 * 1024  # what AWS returns at most
BOOT_DELAY_S = float(os.environ.get("DATA_REFRESH_EC2_BOOT_DELAY", "0.5"))
KILL_GRACE_S = float(os.environ.get("DATA_REFRESH_EC2_KILL_GRACE", "5"))

_lock = threading.Lock()
_instances: dict[str, _HostInstance] = {}  # instance id -> running host process group


def work_dir() -> Path:
    value = os.environ.get("DATA_REFRESH_EC2_DIR")
    return Path(value) if value else Path(tempfile.gettempdir()) / "data-refresh-ec2"


def boot_delay() -> float:
    """Seconds from launch to running: the test override file's when present and valid."""
    try:
        return max(0.0, float((work_dir() / "boot-delay-seconds").read_text().strip()))
    except (OSError, ValueError):
        return BOOT_DELAY_S


class _HostInstance:
    def __init__(self, instance_id: str, ip: str):
        self.instance_id = instance_id
        self.ip = ip
        self.process = None


def _allocate_ip(instance_id: str) -> str:
    """A loopback address no live instance holds: 127.0.1.1 ... 127.0.255.254."""
    with _lock:
        used = {entry.ip for entry in _instances.values()}
        for third in range(1, 256):
            for fourth in range(1, 255):
                ip = f"127.0.{third}.{fourth}"
                if ip not in used:
                    _instances[instance_id] = _HostInstance(instance_id, ip)
                    return ip
    raise RuntimeError("no free loopback address left for another EC2 instance")


def decode_user_data(user_data) -> bytes:
    """moto keeps user data base64-encoded; AWS accepts it gzip-compressed too."""
    if user_data is None:
        return b""
    raw = user_data.as_bytes() if hasattr(user_data, "as_bytes") else user_data
    if isinstance(raw, str):
        raw = raw.encode()
    data = base64.b64decode(raw)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def write_scripts(data: bytes, folder: Path) -> list[Path]:
    """Writes the runnable scripts of the user data (a script, or the text/x-shellscript
    parts of a MIME multipart document, in order) and returns their paths."""
    parts: list[bytes] = []
    if data.lstrip().startswith(b"Content-Type: multipart/"):
        message = email.message_from_bytes(data)
        for part in message.walk():
            if part.get_content_type() == "text/x-shellscript":
                parts.append(part.get_payload(decode=True) or b"")
    elif data.strip():
        parts.append(data)
    paths = []
    for index, script in enumerate(parts):
        path = folder / f"user-data-{index}"
        path.write_bytes(script)
        path.chmod(0o755)
        paths.append(path)
    return paths


def _command(scripts: list[Path]) -> list[str]:
    def one(path: Path) -> str:
        return f'"{path}"' if path.read_bytes().startswith(b"#!") else f'bash "{path}"'

    # Parts run one after the other, like cloud-init's scripts-user.
    return ["bash", "-c", " && ".join(one(path) for path in scripts)]


def _instance_path() -> str:
    # Tools an AMI would carry (the AWS CLI for user data) come from a folder `up` fills.
    extra = os.environ.get("DATA_REFRESH_EC2_EXTRA_PATH", "")
    return f"{extra}:{CLEAN_PATH}" if extra else CLEAN_PATH


def _environment(instance_id: str, ip: str, region: str) -> dict[str, str]:
    endpoint = f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}"
    env = {
        "PATH": _instance_path(), "LANG": "C.UTF-8", "HOME": str(work_dir() / instance_id),
        "INSTANCE_ID": instance_id, "INSTANCE_IP": ip,
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    for name in os.environ.get("DATA_REFRESH_EC2_PASS_ENV", "").split(","):
        if name.strip() and name.strip() in os.environ:
            env[name.strip()] = os.environ[name.strip()]
    return env


def _set_state(instance, name: str, code: int) -> None:
    instance._state.name = name
    instance._state.code = code


def _set_ip(instance, ip: str) -> None:
    nic = instance.nics[0]  # Instance.private_ip reads the primary network interface
    nic.private_ip_address = ip
    nic.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]


def launch(instance, region: str) -> None:
    ip = _allocate_ip(instance.id)
    _set_ip(instance, ip)
    _set_state(instance, "pending", 0)
    folder = work_dir() / instance.id
    folder.mkdir(parents=True, exist_ok=True)
    scripts = write_scripts(decode_user_data(instance.user_data), folder)
    if scripts:
        with open(folder / "console.log", "ab") as console:
            process = procs.spawn(_command(scripts), kind="ec2", name=instance.id, cwd=folder,
                                  env=_environment(instance.id, ip, region), stdout=console)
        with _lock:
            _instances[instance.id].process = process
        # Reap the leader when it exits, so it does not linger as a zombie.
        threading.Thread(target=process.wait, daemon=True).start()
        LOG.info("EC2 instance %s: user data runs as process group %s on %s",
                 instance.id, process.pid, ip)

    def boot() -> None:
        time.sleep(boot_delay())
        if instance._state.name == "pending":
            _set_state(instance, "running", 16)

    threading.Thread(target=boot, daemon=True, name=f"ec2-boot-{instance.id}").start()


def kill(instance_id: str, instance=None, final_state: tuple[str, int] | None = None,
         wait: bool = False) -> None:
    """Kills the instance's process group, then frees its address and moves it to `final_state`."""
    with _lock:
        entry = _instances.get(instance_id)

    def stop() -> None:
        if entry is not None and entry.process is not None:
            if not procs.kill_group(entry.process.pid, KILL_GRACE_S):
                LOG.warning("EC2 instance %s: process group %s survived SIGKILL",
                            instance_id, entry.process.pid)
            procs.forget(entry.process.pid)
        with _lock:
            # Only now: a new instance must not get the address while the old one holds it.
            if _instances.get(instance_id) is entry:
                _instances.pop(instance_id, None)
        if instance is not None and final_state is not None:
            _set_state(instance, *final_state)

    if wait:
        stop()
    else:
        threading.Thread(target=stop, daemon=True, name=f"ec2-kill-{instance_id}").start()


def kill_all() -> None:
    for instance_id in list(_instances):
        kill(instance_id, wait=True)


def console_output(instance_id: str) -> bytes:
    path = work_dir() / instance_id / "console.log"
    try:
        with open(path, "rb") as console:
            console.seek(0, os.SEEK_END)
            console.seek(max(0, console.tell() - CONSOLE_OUTPUT_MAX_BYTES))
            return console.read()
    except OSError:
        return b""


_patched = False


def apply_patches() -> None:
    global _patched
    if _patched:
        return
    _patched = True
    from localstack.utils.patch import patch
    from moto.core.types import Base64EncodedString
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses.general import General

    @patch(InstanceBackend.run_instances)
    def run_instances(fn, self, *args, **kwargs):
        reservation = fn(self, *args, **kwargs)
        for instance in reservation.instances:
            try:
                launch(instance, self.region_name)
            except Exception:
                LOG.exception("EC2 instance %s: could not start its user data", instance.id)
                kill(instance.id)
                _set_state(instance, "terminated", 48)
        return reservation

    @patch(InstanceBackend.terminate_instances)
    def terminate_instances(fn, self, instance_ids, *args, **kwargs):
        result = fn(self, instance_ids, *args, **kwargs)
        for instance, _previous in result:
            if instance.id in _instances:
                _set_state(instance, "shutting-down", 32)
                kill(instance.id, instance, ("terminated", 48))
        return result

    @patch(InstanceBackend.stop_instances)
    def stop_instances(fn, self, instance_ids, *args, **kwargs):
        result = fn(self, instance_ids, *args, **kwargs)
        for instance, _previous in result:
            if instance.id in _instances:
                _set_state(instance, "stopping", 64)
                kill(instance.id, instance, ("stopped", 80))
        return result

    @patch(General.get_console_output)
    def get_console_output(fn, self):
        response = fn(self)
        instance_id = self._get_param("InstanceId")
        output = console_output(instance_id)
        if output and isinstance(response.result, dict):
            response.result["Output"] = Base64EncodedString.from_raw_string(
                output.decode(errors="replace"))
        return response
