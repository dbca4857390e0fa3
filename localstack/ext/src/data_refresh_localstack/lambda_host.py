"""LocalStack Lambda runtime executor that runs a function's ``bootstrap`` as a host process.

LocalStack ships only a Docker executor (and downloads its runtime shim at run time). This
executor, selected with ``LAMBDA_RUNTIME_EXECUTOR=host``, serves the Lambda Runtime API
itself to a ``provided.*`` function's ``bootstrap`` (e.g. a Rust ``lambda_runtime`` binary):

- LocalStack runs one invocation at a time per execution environment and starts more
  environments for concurrent invocations; each environment here is one process group.
- The function's configured timeout is enforced: the process group is killed and the
  invocation fails with ``Sandbox.Timedout`` / ``Task timed out after N seconds``.
- A bootstrap that exits (crash, non-zero exit) fails the invocation with
  ``Runtime.ExitError`` and the tail of its output. Like AWS, the next invocation starts a
  fresh process (a new init).
- Each invocation's logs are the lines printed while it ran (plus init output before it),
  bounded in size, and go to CloudWatch Logs through LocalStack.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from . import procs

LOG = logging.getLogger(__name__)

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
# Bounded buffers: one invocation's log, and the environment's history for get_logs().
MAX_INVOCATION_LOG_BYTES = int(os.environ.get("DATA_REFRESH_LAMBDA_LOG_LIMIT", 1024 * 1024))
HISTORY_LINES = 2000
MAX_LINE_BYTES = 64 * 1024
CRASH_TAIL_LINES = 10
# Upper bound of simultaneous bootstrap processes on this machine.
MAX_PROCESSES = int(os.environ.get("DATA_REFRESH_LAMBDA_MAX_PROCESSES", 32))
_process_slots = threading.BoundedSemaphore(MAX_PROCESSES)

# Live executors, so that LocalStack's shutdown can stop them all.
_executors: set[HostRuntimeExecutor] = set()
_executors_lock = threading.Lock()


def stop_all() -> None:
    with _executors_lock:
        executors = list(_executors)
    for executor in executors:
        executor.stop()


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class _InvocationLog:
    """One invocation's output lines, bounded in bytes."""

    def __init__(self, limit: int = MAX_INVOCATION_LOG_BYTES):
        self._lines: list[str] = []
        self._size = 0
        self._dropped = 0
        self._limit = limit

    def add(self, line: str) -> None:
        if self._size + len(line) > self._limit:
            self._dropped += 1
            return
        self._lines.append(line)
        self._size += len(line)

    def text(self) -> str:
        lines = list(self._lines)
        if self._dropped:
            lines.append(f"[{self._dropped} more lines dropped: log limit of {self._limit} bytes]")
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class _Invocation:
    def __init__(self, payload: dict, timeout_s: float):
        self.request_id: str = payload["invoke-id"]
        self.body: bytes = payload["payload"].encode()
        self.function_arn: str = payload.get("invoked-function-arn", "")
        self.trace_id: str = payload.get("trace-id", "")
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.deadline_ms = int((time.time() + timeout_s) * 1000)
        self.done = threading.Event()
        self.log = _InvocationLog()
        self.result: bytes | None = None
        self.is_error = False

    def finish(self, body: bytes, is_error: bool) -> bool:
        if self.done.is_set():
            return False
        self.result, self.is_error = body, is_error
        self.done.set()
        return True


class _OutputPump(threading.Thread):
    """Reads the process's merged stdout/stderr line by line.

    `drained()` waits until the pipe was seen empty twice after the call: everything the
    process wrote before it answered an invocation has then been handed to `on_line`.
    """

    def __init__(self, stream, on_line):
        super().__init__(daemon=True, name="lambda-host-output")
        self._fd = stream.fileno()
        self._on_line = on_line
        self._cond = threading.Condition()
        self._idle_polls = 0
        self._eof = False

    def run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP)
        pending = b""
        while True:
            if not poller.poll(20):
                with self._cond:
                    self._idle_polls += 1
                    self._cond.notify_all()
                continue
            chunk = os.read(self._fd, 65536)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._on_line(line.decode(errors="replace") + "\n")
                if len(pending) > MAX_LINE_BYTES:
                    self._on_line(pending.decode(errors="replace") + "\n")
                    pending = b""
                continue
            if pending:
                self._on_line(pending.decode(errors="replace") + "\n")
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            return

    def drained(self, timeout_s: float = 1.0) -> None:
        with self._cond:
            start = self._idle_polls
            self._cond.wait_for(lambda: self._eof or self._idle_polls >= start + 2, timeout_s)


class _RuntimeSession:
    """One bootstrap process, the Runtime API it talks to, and its current invocation.

    A session is never reused after its process died or was killed: stale requests of a
    killed process can then never pick up or answer a later invocation.
    """

    def __init__(self, name: str, command: list[str], cwd: str, env: dict[str, str], on_line):
        self.name = name
        self._on_line = on_line
        self._lock = threading.Lock()
        self._queue: collections.deque[_Invocation] = collections.deque()
        self._queue_cond = threading.Condition(self._lock)
        self.current: _Invocation | None = None
        self.ready = threading.Event()
        self.init_error: bytes | None = None
        self.closed = False
        self.tail: collections.deque[str] = collections.deque(maxlen=CRASH_TAIL_LINES)
        self.init_log = _InvocationLog()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True,
                         name=f"lambda-runtime-api-{name}").start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}")
        try:
            self.process = procs.spawn(command, kind="lambda", name=name, cwd=cwd, env=env,
                                       stdout=subprocess.PIPE)
        except OSError:
            self.server.shutdown()
            self.server.server_close()
            raise
        self.pump = _OutputPump(self.process.stdout, self._line)
        self.pump.start()

    # ---- output
    def _line(self, line: str) -> None:
        self.tail.append(line)
        with self._lock:
            invocation = self.current
        if invocation is not None and not invocation.done.is_set():
            invocation.log.add(line)
        else:
            self.init_log.add(line)
        self._on_line(line)

    # ---- lifecycle
    def alive(self) -> bool:
        return not self.closed and self.process.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        """Waits for the first GET /next (init done). Raises StatusErrorException on failure."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.05):
            if self.init_error is not None:
                raise StatusErrorException("Runtime init error", payload=self.init_error)
            if not self.alive() or time.monotonic() > deadline:
                reason = ("did not call the Runtime API within "
                          f"{timeout_s:.0f} s" if self.alive() else self._exit_reason())
                self.close()
                raise StatusErrorException(
                    "Environment startup failed",
                    payload=_error_payload("Runtime.ExitError",
                                           f"Error: Runtime {reason}{self._tail_text()}"))

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._queue_cond.notify_all()
        # Also when the leader already exited: children it left in the group must not outlive it.
        procs.kill_group(self.process.pid, grace_s=0.5)
        procs.forget(self.process.pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            LOG.warning("lambda %s: process %s did not exit", self.name, self.process.pid)
        self.pump.join(timeout=2)
        self.server.shutdown()
        self.server.server_close()

    def _exit_reason(self) -> str:
        code = self.process.poll()
        if code is None:
            return "is still running"
        if code < 0:
            return f"exited with error: signal {-code}"
        return f"exited with error: exit status {code}"

    def _tail_text(self) -> str:
        lines = "".join(self.tail).rstrip("\n")
        return f"\nLast output:\n{lines}" if lines else ""

    # ---- invocation
    def invoke(self, invocation: _Invocation) -> tuple[bytes, bool, str, float]:
        """Runs one invocation; returns (payload, is_error, logs, duration in ms). Closes the
        session on timeout or process exit."""
        with self._lock:
            self.current = invocation
            self._queue.append(invocation)
            self._queue_cond.notify_all()
        started = time.monotonic()
        while not invocation.done.wait(0.05):
            if not self.alive():
                self.pump.join(timeout=2)  # the pipe's EOF: all of its output is read
                invocation.finish(_error_payload(
                    "Runtime.ExitError",
                    f"RequestId: {invocation.request_id} Error: Runtime {self._exit_reason()}"
                    f"{self._tail_text()}"), is_error=True)
                self.close()
                break
            if time.monotonic() > invocation.deadline:
                if invocation.finish(_error_payload(
                        "Sandbox.Timedout",
                        f"RequestId: {invocation.request_id} Error: Task timed out after "
                        f"{invocation.timeout_s:.2f} seconds"), is_error=True):
                    invocation.log.add(f"{_now()} {invocation.request_id} Task timed out "
                                       f"after {invocation.timeout_s:.2f} seconds\n")
                self.close()
                break
        if self.alive():
            self.pump.drained()
        with self._lock:
            self.current = None
        duration_ms = (time.monotonic() - started) * 1000
        return invocation.result or b"", invocation.is_error, invocation.log.text(), duration_ms

    def _next(self) -> _Invocation | None:
        """Blocks until an invocation is queued; None when the session closed."""
        with self._queue_cond:
            self._queue_cond.wait_for(lambda: self._queue or self.closed)
            if self.closed:
                return None
            return self._queue.popleft()

    def _handler_class(self):
        session = self

        class RuntimeApiHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self):
                if self.path != f"{RUNTIME_API_PREFIX}/invocation/next":
                    return self._reply(404, _error_payload("NotFound", self.path))
                session.ready.set()
                invocation = session._next()
                if invocation is None:
                    self.close_connection = True
                    return self._reply(410, _error_payload("Gone", "runtime session closed"))
                self._reply(200, invocation.body, {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                    "Lambda-Runtime-Trace-Id": invocation.trace_id,
                })

            def do_POST(self):
                body = self._body()
                path = self.path
                if path == f"{RUNTIME_API_PREFIX}/init/error":
                    session.init_error = body or _error_payload("Runtime.InitError", "init failed")
                    return self._reply(202, b'{"status":"OK"}')
                prefix = f"{RUNTIME_API_PREFIX}/invocation/"
                if path.startswith(prefix) and path.endswith(("/response", "/error")):
                    request_id, kind = path[len(prefix):].rsplit("/", 1)
                    invocation = session.current
                    if invocation is None or invocation.request_id != request_id:
                        return self._reply(400, _error_payload(
                            "InvalidRequestID", f"unknown or finished request {request_id}"))
                    # Let the pump take what the function printed before answering.
                    session.pump.drained(0.2)
                    if not invocation.finish(body, is_error=kind == "error"):
                        return self._reply(400, _error_payload(
                            "InvalidStateTransition", "the invocation already ended"))
                    return self._reply(202, b'{"status":"OK"}')
                return self._reply(404, _error_payload("NotFound", path))

        return RuntimeApiHandler


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HostRuntimeExecutor(RuntimeExecutor):
    """One Lambda execution environment: a bootstrap process on the host."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._env: dict[str, str] = {}
        self._code_dir = ""
        self._session: _RuntimeSession | None = None
        self._invoke_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._history: collections.deque[str] = collections.deque(maxlen=HISTORY_LINES)
        self._has_slot = False
        self._stopped = False
        self._pending_init_log: _InvocationLog | None = None

    # ---- RuntimeExecutor
    def start(self, env_vars: dict[str, str]) -> None:
        config_ = self.function_version.config
        runtime = config_.runtime or ""
        if not runtime.startswith("provided"):
            raise LambdaRuntimeException(
                f"the host Lambda executor runs only provided.* runtimes (a 'bootstrap' binary); "
                f"function {self.function_version.id.function_name} uses '{runtime or config_.package_type}'")
        self._code_dir = str(config_.code.get_unzipped_code_location())
        bootstrap = Path(self._code_dir, "bootstrap")
        if not bootstrap.is_file():
            raise LambdaRuntimeException(f"no 'bootstrap' file in the function code ({self._code_dir})")
        if not os.access(bootstrap, os.X_OK):
            raise LambdaRuntimeException(f"'bootstrap' is not executable ({bootstrap})")
        # A clean environment: the function's own, not LocalStack's.
        self._env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
        self._env.update({key: str(value) for key, value in env_vars.items()})
        self._env.update(LAMBDA_TASK_ROOT=self._code_dir, LAMBDA_RUNTIME_DIR=self._code_dir)

        if not _process_slots.acquire(timeout=config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT):
            raise LambdaRuntimeException(
                f"more than {MAX_PROCESSES} host Lambda processes at once "
                "(raise DATA_REFRESH_LAMBDA_MAX_PROCESSES)")
        self._has_slot = True
        with _executors_lock:
            _executors.add(self)
        self._start_session()

    def _start_session(self) -> _RuntimeSession:
        with self._state_lock:
            if self._stopped:
                raise StatusErrorException("Environment stopped",
                                           payload=_error_payload("Runtime.Stopped", "environment stopped"))
            session = _RuntimeSession(
                name=f"{self.function_version.id.function_name}:{self.id}",
                command=[str(Path(self._code_dir, "bootstrap"))], cwd=self._code_dir,
                env=self._env, on_line=self._history.append)
            self._session = session
        session.wait_ready(float(config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT))
        return session

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        timeout_s = float(self.function_version.config.timeout)
        invocation = _Invocation(payload, timeout_s)
        with self._invoke_lock:
            session = self._session
            if session is None or not session.alive():
                # The previous process crashed or timed out: a fresh init, as on AWS.
                try:
                    session = self._start_session()
                except StatusErrorException as e:
                    return InvocationResult(invocation.request_id, e.payload, is_error=True,
                                            logs=self._session_init_log())
            init_log = session.init_log.text()
            session.init_log = _InvocationLog()
            body, is_error, logs, duration_ms = session.invoke(invocation)
        version = self.function_version.id.qualifier
        text = (init_log + f"START RequestId: {invocation.request_id} Version: {version}\n" + logs
                + f"END RequestId: {invocation.request_id}\n"
                + f"REPORT RequestId: {invocation.request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Memory Size: {self.function_version.config.memory_size} MB\n")
        return InvocationResult(invocation.request_id, body, is_error=is_error, logs=text)

    def _session_init_log(self) -> str:
        session = self._session
        return session.init_log.text() if session else ""

    def stop(self) -> None:
        with self._state_lock:
            if self._stopped:
                return
            self._stopped = True
            session, self._session = self._session, None
        if session is not None:
            session.close()
        if self._has_slot:
            self._has_slot = False
            _process_slots.release()
        with _executors_lock:
            _executors.discard(self)

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        # Informational only (LOCALSTACK_RUNTIME_ENDPOINT): this executor answers invocations
        # directly instead of through LocalStack's callback routes.
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        return "".join(self._history)

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "host"

    def load(self, *args, **kwargs):
        return HostRuntimeExecutor
