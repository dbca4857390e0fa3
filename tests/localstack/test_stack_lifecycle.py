"""localstack/up and localstack/down on a second, private stack (own folder, own ports), so
that the shared stack the other tests use is left alone: `up` twice is harmless, schema
files apply once, and `down` leaves no process — even after LocalStack was SIGKILLed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import boto3
import pytest

from conftest import REPO_ROOT, require_env, wait_until

PG_PORT, LS_PORT = "55532", "4599"


@pytest.fixture(scope="module")
def private_stack():
    shared_local = Path(require_env("DATA_REFRESH_LOCAL"))
    # Inside .local: the service user must reach it (pytest's tmp folders are private to root).
    folder = Path(tempfile.mkdtemp(prefix="lifecycle-", dir=shared_local))
    folder.chmod(0o755)
    # Reuse the installed venvs: this test is about processes and data, not installation.
    (folder / "venv").symlink_to(shared_local / "venv")
    schema = folder / "schema"
    shutil.copytree(REPO_ROOT / "localstack" / "schema", schema, dirs_exist_ok=True)
    (schema / "catalog").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DATA_REFRESH_LOCAL=str(folder), LOCAL_SCHEMA_DIR=str(schema),
               LOCAL_PG_PORT=PG_PORT, LOCALSTACK_PORT=LS_PORT)
    yield folder, schema, env
    subprocess.run([REPO_ROOT / "localstack" / "down", "--purge"], env=env, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def run(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REPO_ROOT / "localstack" / script, *args], env=env, text=True,
                          capture_output=True, timeout=300)


def psql(env: dict, db: str, sql: str) -> str:
    result = subprocess.run(
        ["/usr/lib/postgresql/15/bin/psql", "-X", "-At", "-h", "127.0.0.1", "-p", PG_PORT,
         "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def processes_in(folder: Path) -> list[str]:
    """Processes whose command line or working directory is inside `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_up_twice_applies_each_schema_file_once(private_stack):
    folder, schema, env = private_stack
    (schema / "catalog" / "V900__lifecycle_probe.sql").write_text(
        "CREATE TABLE lifecycle_probe (id integer);\nINSERT INTO lifecycle_probe VALUES (1);\n")

    first = run("up", env, "postgres")
    assert first.returncode == 0, first.stderr
    assert psql(env, "catalog", "SELECT count(*) FROM lifecycle_probe") == "1"
    applied = psql(env, "catalog", "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations")
    assert "V900__lifecycle_probe.sql" in applied
    postmaster = (folder / "data" / "postgres" / "postmaster.pid").read_text().split()[0]

    (schema / "catalog" / "V901__lifecycle_more.sql").write_text(
        "INSERT INTO lifecycle_probe VALUES (2);\n")
    second = run("up", env, "postgres")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    # The first file did not run again, the new one ran once; the same server kept running.
    assert psql(env, "catalog", "SELECT string_agg(id::text, ',' ORDER BY id) FROM lifecycle_probe") == "1,2"
    assert (folder / "data" / "postgres" / "postmaster.pid").read_text().split()[0] == postmaster
    for db in ("catalog", "api"):
        assert psql(env, db, "SELECT count(*) FROM pg_database WHERE datname = current_database()") == "1"
    assert psql(env, "api", "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'") == "1"

    # An applied file that changed is refused, naming the file.
    (schema / "catalog" / "V900__lifecycle_probe.sql").write_text("SELECT 1;\n")
    changed = run("up", env, "postgres")
    assert changed.returncode != 0
    assert "V900__lifecycle_probe.sql changed after it was applied" in changed.stderr
    (schema / "catalog" / "V900__lifecycle_probe.sql").unlink()
    (schema / "catalog" / "V901__lifecycle_more.sql").unlink()


def start_stack_with_an_instance(folder: Path, env: dict) -> Path:
    """Starts PostgreSQL and LocalStack of the private stack and an EC2 instance whose user
    data leaves a background child; returns the instance's folder."""
    started = run("up", env, "postgres", "localstack")
    assert started.returncode == 0, started.stderr
    env_file = (folder / "env").read_text()
    assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{LS_PORT}" in env_file
    assert f"TEST_PG_URL=postgres://postgres@127.0.0.1:{PG_PORT}/postgres" in env_file

    ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{LS_PORT}", region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    user_data = "#!/bin/bash\nsleep 1000 &\nexec sleep 1001\n"
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                 UserData=user_data)["Instances"][0]
    records = folder / "data" / "procs"
    wait_until(lambda: records.is_dir() and any(p.name.isdigit() for p in records.iterdir()),
               timeout_s=10, what="the instance's process group to be recorded")
    instance_folder = folder / "data" / "ec2" / instance["InstanceId"]
    wait_until(lambda: len(processes_in(instance_folder)) >= 2, timeout_s=10,
               what="the user data's processes")
    return instance_folder


def test_down_stops_localstack_and_its_instances(private_stack):
    folder, _schema, env = private_stack
    start_stack_with_an_instance(folder, env)
    stopped = run("down", env)
    assert stopped.returncode == 0, stopped.stderr
    # LocalStack's own shutdown killed the instance: nothing was left for the reaper.
    assert "killed leftover" not in stopped.stdout + stopped.stderr
    assert processes_in(folder) == []


def test_down_leaves_no_process_even_after_localstack_was_killed(private_stack):
    folder, _schema, env = private_stack
    instance_folder = start_stack_with_an_instance(folder, env)
    records = folder / "data" / "procs"

    # LocalStack dies without running its shutdown: the instance's processes are orphans now.
    localstack_pgid = int((folder / "run" / "localstack.pgid").read_text())
    os.killpg(localstack_pgid, signal.SIGKILL)
    wait_until(lambda: not any(str(folder / "venv") in p for p in processes_in(folder)),
               timeout_s=10, what="LocalStack to die")
    assert processes_in(instance_folder), "the orphans should still run before down"

    stopped = run("down", env)
    assert stopped.returncode == 0, stopped.stderr
    assert "killed leftover ec2 process group" in stopped.stdout + stopped.stderr
    assert processes_in(folder) == []
    assert not any(p.name.isdigit() for p in records.iterdir())

    status = run("status", env)
    assert status.returncode != 0
    assert "stopped" in status.stdout
