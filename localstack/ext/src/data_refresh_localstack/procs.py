"""Host process groups started by the extension (Lambda bootstraps, EC2 user data).

Each group is started in its own session and recorded as one file in a folder
(``DATA_REFRESH_PROCS_DIR``), so that a group can be killed as a whole, and so that
``localstack/down`` or the next LocalStack start can kill the groups left behind when
LocalStack itself was killed with SIGKILL.

Standard library only: ``localstack/down`` runs this file with the system Python
(``python3 procs.py reap DIR``) without importing LocalStack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DIR_ENV = "DATA_REFRESH_PROCS_DIR"


def records_dir() -> Path | None:
    value = os.environ.get(DIR_ENV)
    return Path(value) if value else None


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat), to detect pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn(command: list[str], *, kind: str, name: str, cwd: str | os.PathLike, env: dict[str, str],
          stdout, stderr=subprocess.STDOUT) -> subprocess.Popen:
    """Starts `command` as the leader of a new process group and records the group."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, start_new_session=True)
    record(proc.pid, kind=kind, name=name)
    return proc


def record(pgid: int, *, kind: str, name: str) -> None:
    folder = records_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"pgid": pgid, "kind": kind, "name": name, "start_time": _start_time(pgid),
             "owner_pid": os.getpid()}
    tmp = folder / f".{pgid}.tmp"
    tmp.write_text(json.dumps(entry))
    tmp.replace(folder / str(pgid))


def forget(pgid: int) -> None:
    folder = records_dir()
    if folder is not None:
        (folder / str(pgid)).unlink(missing_ok=True)


def kill_group(pgid: int, grace_s: float = 3.0) -> bool:
    """SIGTERM to the whole group, SIGKILL after `grace_s`. True when the group is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return True
            time.sleep(0.05)
    return not group_alive(pgid)


def reap(folder: Path, grace_s: float = 3.0) -> list[dict]:
    """Kills every recorded group that still runs and forgets all records; returns those killed."""
    killed = []
    if not folder.is_dir():
        return killed
    for path in sorted(folder.iterdir()):
        if not path.name.isdigit():
            continue
        try:
            entry = json.loads(path.read_text())
            pgid = int(entry["pgid"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            continue
        leader_start = _start_time(pgid)
        # A live pid with another start time is an unrelated process that reused the number.
        recycled = leader_start is not None and leader_start != entry.get("start_time")
        if not recycled and group_alive(pgid):
            kill_group(pgid, grace_s)
            killed.append(entry)
        path.unlink(missing_ok=True)
    return killed


def listing(folder: Path) -> list[dict]:
    entries = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.isdigit():
                try:
                    entry = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                entry["alive"] = group_alive(int(entry["pgid"]))
                entries.append(entry)
    return entries


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("reap", "list"):
        print(f"usage: {argv[0]} reap|list DIR", file=sys.stderr)
        return 2
    folder = Path(argv[2])
    if argv[1] == "reap":
        for entry in reap(folder):
            print(f"killed leftover {entry['kind']} process group {entry['pgid']} ({entry['name']})")
    else:
        for entry in listing(folder):
            state = "running" if entry["alive"] else "gone"
            print(f"{entry['kind']:7} {entry['name']:40} pgid {entry['pgid']:>7}  {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
