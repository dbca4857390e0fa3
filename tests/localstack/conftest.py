"""Fixtures for the LocalStack extension tests: they run against the stack `localstack/up`
started (environment from .local/env, set by scripts/test)."""

from __future__ import annotations

import io
import os
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE_ARN = "arn:aws:iam::000000000000:role/probe-lambda-role"


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"environment variable {name} is not set: run the tests through scripts/test "
                    f"(or `localstack/up` and `. .local/env`)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def endpoint() -> str:
    return require_env("AWS_ENDPOINT_URL")


@pytest.fixture(scope="session")
def aws(endpoint):
    region = require_env("AWS_REGION")
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=region)
    config = Config(retries={"max_attempts": 2}, read_timeout=120)

    def client(service: str):
        return session.client(service, endpoint_url=endpoint, config=config)

    return client


@pytest.fixture(scope="session")
def probe_binary() -> Path:
    """The tiny Rust Lambda of tests/probe-lambda, built in the dev profile."""
    if explicit := os.environ.get("PROBE_LAMBDA_BIN"):
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    subprocess.run(["cargo", "build", "--quiet", "-p", "probe-lambda"], cwd=REPO_ROOT, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=str(target)))
    return target / "debug" / "probe-lambda"


@pytest.fixture(scope="session")
def probe_zip(probe_binary) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, probe_binary.read_bytes())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def make_function(aws, probe_zip):
    """Creates probe functions (provided.al2023 from the zip); deletes them at the end."""
    lam = aws("lambda")
    created = []

    def make(timeout: int = 10, environment: dict | None = None) -> str:
        name = f"probe-{uuid.uuid4().hex[:10]}"
        lam.create_function(
            FunctionName=name, Runtime="provided.al2023", Handler="probe.handler", Role=ROLE_ARN,
            Code={"ZipFile": probe_zip}, Timeout=timeout, MemorySize=128,
            Environment={"Variables": environment or {}})
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        created.append(name)
        return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]

    yield make
    for name in created:
        lam.delete_function(FunctionName=name)


def wait_until(predicate, timeout_s: float = 30, interval_s: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
