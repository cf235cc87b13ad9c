"""The warm local stack (``rcyc local up``), client side: start it in the background, find it, stop it.

The stack is one background process (``stack_server``) holding the embedded S3 and a pool of function
instances, answering the Lambda Invoke API (``invoke_api``) on its own 127.0.0.1 port. Its state file lets later
commands find it; a state whose process is gone or does not answer is stale, and is removed rather than
trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rcyc_core.errors import FunctionError, InputError, PrerequisiteError

from ...defaults import DEFAULT_BUCKET, DEFAULT_FUNCTION, DEFAULT_STACK_INSTANCES
from ...function_spec import FunctionSpec
from ...invocation import Invocation, Report, decode_reply, log_tail_lines
from ...paths import cache_dir
from ..emulator import reaper
from ..emulator.sandbox import payload
from .protocol import STATUS_PATH



def state_dir() -> Path:
    return cache_dir() / "local"



def state_file() -> Path:
    return state_dir() / "state.json"


class StackConflict(InputError):
    """``local up`` asked for a stack other than the one running."""

    kind = "StackConflict"


def ensure_state_dir() -> Path:
    """The stack's folder in the cache, created; an unwritable cache is a clear error, not a traceback."""
    directory = state_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PrerequisiteError(f"the rcyc cache {directory} is not writable: {exc.strerror}", kind="CacheUnwritable",
                                hint="Point RCYC_CACHE_HOME at a writable folder.") from None
    return directory


@contextlib.contextmanager
def locked():
    """The stack's lock (``flock`` on ``local/lock``): one ``up``/``down`` at a time, so two concurrent
    ``local up`` give one stack. Released by the kernel if its holder dies."""
    fd = os.open(ensure_state_dir() / "lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)



@dataclass(frozen=True)
class StackConfig:
    """How a stack is started: the function it runs and the stack's own settings. Its JSON (in the state file
    and on the server's command line) is flat: the function's fields beside the stack's."""

    function: FunctionSpec = field(default_factory=FunctionSpec)
    instances: int | None = None  # None: as many as a running stack has, else DEFAULT_STACK_INSTANCES
    model: str | None = None  # a resolved model path; None: the fixture model
    bucket: str = DEFAULT_BUCKET
    # The Invoke API answers to this name (and to the emulator's "function"): RCYC_FUNCTION, as for the
    # commands' --function, else the name rcyc deploys.
    function_name: str = field(default_factory=lambda: os.environ.get("RCYC_FUNCTION") or DEFAULT_FUNCTION)
    max_waiting: int = 64  # invokes waiting for an idle instance beyond the pool; more get 429
    event_queue: int = 128  # queued Event (asynchronous) invokes; more get 429
    read_timeout: float = 10.0  # seconds of silence from a client before its request is answered or dropped
    idle_seconds: float | None = None  # stop after this long without a request (a stack invoke-local left behind)

    def to_json(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "function"}
        return {**self.function.to_json(), **own}

    @classmethod
    def from_json(cls, data: dict) -> StackConfig:
        own = {f.name: data[f.name] for f in fields(cls) if f.name != "function" and f.name in data}
        return cls(function=FunctionSpec.from_json(data), **own)


@dataclass(frozen=True)
class StackState:
    """The state file of a running stack: where it answers, what it runs, and what it owns."""

    pid: int
    endpoint: str  # the Invoke API
    s3_endpoint: str
    bucket: str
    config: StackConfig  # as started, with the runtime that runs (never "auto")
    runtime: str
    started_at: float
    owner: str  # the owner token of everything it started (reaper)
    rie_path: str
    model: dict  # the model it runs: name, version, sha256
    instance_pids: list[int]

    def to_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "config": self.config.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> StackState:
        return cls(**{**{f.name: data.get(f.name) for f in fields(cls)}, "config": StackConfig.from_json(data["config"])})


class RemoteStack:
    """A client of a running stack: ``invoke`` has the same shape as a sandbox's."""

    def __init__(self, state: dict):
        self.state = state
        self.endpoint_url = state["endpoint"]

    def status(self, timeout: float = 2.0) -> dict:
        with urllib.request.urlopen(self.endpoint_url + STATUS_PATH, timeout=timeout) as reply:
            return json.loads(reply.read())

    def invoke(self, event: object, attempts: int = 6) -> Invocation:
        """Invoke through the stack's Lambda Invoke API, with the log tail and rcyc's REPORT header. A 429
        (every instance busy and the wait queue full) is retried with backoff."""
        name = self.state["config"].get("function_name", "function")
        request = urllib.request.Request(
            f"{self.endpoint_url}/2015-03-31/functions/{name}/invocations", data=payload(event), method="POST",
            headers={"Content-Type": "application/json", "X-Amz-Log-Type": "Tail", "X-Rcyc-Report": "1"})
        started = time.perf_counter()
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=self.state["config"]["timeout"] + 30) as reply:
                    body, headers = reply.read(), reply.headers
                break
            except urllib.error.HTTPError as exc:
                refusal = _refusal(exc)
                if exc.code == 429 and attempt + 1 < attempts:
                    time.sleep(0.05 * 2 ** attempt)
                    continue
                raise FunctionError(f"the local stack refused the invoke: {refusal}", kind="EmulatorError",
                                    hint="rcyc local status; rcyc local down && rcyc local up") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                raise FunctionError(f"the local stack did not answer: {getattr(exc, 'reason', exc)}",
                                    kind="EmulatorError", hint="rcyc local status; rcyc local down && rcyc local up") from None
        wall_ms = (time.perf_counter() - started) * 1000
        meta = json.loads(headers.get("X-Rcyc-Report") or "{}")
        logs = log_tail_lines(headers.get("X-Amz-Log-Result"))
        text = body.decode("utf-8", "replace")
        if headers.get("X-Amz-Function-Error"):
            try:
                error = json.loads(text)
                if error.get("errorType") == "Sandbox.Timedout":
                    text = str(error.get("errorMessage"))  # decoded as the emulator's own timeout answer
            except (ValueError, AttributeError):
                pass
        try:
            response = decode_reply(text)
        except FunctionError as exc:
            exc.logs = logs
            raise
        return Invocation(response, Report(**meta.get("report", {})), wall_ms, logs)



def _refusal(error: urllib.error.HTTPError) -> str:
    """``Type: message`` of an Invoke API error answer."""
    try:
        body = json.loads(error.read() or b"{}")
        message = body.get("Message", body.get("message", ""))
    except (OSError, ValueError, AttributeError):
        message = ""
    return f"{error.code} {error.headers.get('X-Amzn-ErrorType') or error.reason}: {message}".rstrip(": ")



def is_stack(pid: int) -> bool:
    """Whether ``pid`` is a running rcyc stack (not a stale pid that now belongs to something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        # Also a stack an rcyc from before the local/ split started (its module was local.stack_server).
        return running(pid) and (b"rcyc_cli.local.stack.server" in cmdline or b"rcyc_cli.local.stack_server" in cmdline)
    except OSError:
        return False



def read_state() -> dict | None:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None



def find() -> RemoteStack | None:
    """The running stack, or None. A state file whose process is gone (or is not a stack) is stale: what
    it owned (emulators, runtimes, containers) is stopped and the file removed. A stack that is alive but
    slow to answer is left alone."""
    reaper.sweep_orphans()
    state = read_state()
    if state is None:
        return None
    if not isinstance(state.get("pid"), int) or not is_stack(state["pid"]):
        clean_stale(state)
        return None
    stack = RemoteStack(state)
    try:
        stack.status()
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return stack


def clean_stale(state: dict) -> None:
    """Stop whatever a dead stack left running (its process was killed with -9, or crashed), then remove
    its state file. Only processes carrying the stack's own owner token are signalled: a recorded pid that
    now belongs to something else never is."""
    owner = state.get("owner")
    if isinstance(owner, str) and owner.startswith(reaper.cache_tag()):
        reaper.stop_owned(owner)
        if state.get("runtime") == "docker":
            reaper.remove_owned_containers(owner)
    if read_state() == state:  # not replaced meanwhile by a new stack's state
        state_file().unlink(missing_ok=True)


def up(config: StackConfig, wait_seconds: float = 900.0) -> RemoteStack:
    """Start the stack in the background and wait until every instance is warm. Under the stack's lock:
    a concurrent ``up`` waits, then finds this stack. A running stack started otherwise is refused."""
    with locked():
        existing = find()
        if existing:
            if (difference := config_difference(config, existing.state.get("config", {}))):
                raise StackConflict(f"a local stack already runs with {difference}",
                                    hint="Stop it first (rcyc local down), or use it as it is.")
            return existing
        return _start(config, wait_seconds)


def config_difference(wanted: StackConfig, running: dict) -> str | None:
    """The first setting of a running stack that differs from the one asked for. Not compared: an ``auto``
    runtime (it takes whichever runs), instances not asked for, and how long an idle stack lives."""
    asked = wanted.to_json()
    if not wanted.function.accepts_runtime(running.get("runtime")):
        return f"runtime {running.get('runtime')} (this asks for {wanted.function.runtime})"
    for name, value in asked.items():
        if name in ("runtime", "idle_seconds") or (name == "instances" and value is None):
            continue
        if name in running and running[name] != value:
            return f"{name.replace('_', ' ')} {running[name]} (this asks for {value})"
    return None


def _start(config: StackConfig, wait_seconds: float) -> RemoteStack:
    config = replace(config, instances=config.instances or DEFAULT_STACK_INSTANCES)
    directory = ensure_state_dir()
    log_path = directory / "stack.log"
    owner = reaper.new_owner("stack")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "rcyc_cli.local.stack.server", json.dumps(config.to_json()), owner],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                raise PrerequisiteError(f"the local stack did not start: {tail[0]}", hint=f"Its log: {log_path}")
            stack = find()
            if stack and stack.state["pid"] == process.pid:
                return stack
            time.sleep(0.1)
        raise PrerequisiteError("the local stack did not become ready in time", hint=f"Its log: {log_path}")
    except BaseException:  # not ready, an error, Ctrl-C or SIGTERM: the half-started stack stops everything it started
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reaper.stop_owned(owner)  # even what it started before it could write its state
        state = read_state()
        if state and state.get("pid") == process.pid:
            clean_stale(state)
        raise


def down(timeout: float = 30.0) -> bool:
    """Stop the stack and everything it started. Returns False if none was running (a stale state's
    leftovers are still stopped)."""
    with locked():
        state = read_state()
        if state is None:
            return False
        if not isinstance(state.get("pid"), int) or not is_stack(state["pid"]):
            clean_stale(state)  # stale: its pid may belong to something else now; never signal it
            return False
        pid = state["pid"]
        os.kill(pid, signal.SIGTERM)  # the stack stops its instances and its S3, then exits
        deadline = time.monotonic() + timeout
        while running(pid):
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)  # it did not stop by itself
                except OSError:
                    pass
                break
            time.sleep(0.05)
        clean_stale(state)  # whatever it could not stop (or a killed stack left) goes too
        return True


def running(pid: int) -> bool:
    """Whether ``pid`` is alive. An exited child of this process (a zombie until reaped) is not: it is reaped
    here, and a zombie of another parent counts as gone too."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



def describe(stack: RemoteStack) -> dict:
    """What ``local status`` shows: the stack's own status plus where it answers and how it runs."""
    return {**stack.status(), "endpoint": stack.endpoint_url, "runtime": stack.state["runtime"]}
