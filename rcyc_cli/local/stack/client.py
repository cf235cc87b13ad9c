"""The warm local stack (``rcyc local up``), client side: start it in the background, find it, stop it.

The stack is one background process (``server``) holding the embedded S3 and a pool of function
instances, answering the Lambda Invoke API (``invoke_api``) on its own 127.0.0.1 port.

One stack per cache home, owned by it. Identity comes from the stack's lock (``ownership``): a held lock
is a living stack, however slow. Liveness comes from the process, never from how fast it answers: a stack that holds its lock but does not
answer (stopped, overloaded) is an error that says so, never a reason to start a second one. The state
file (``local/state.json``) only says where the stack answers; it is trusted only when it carries the lock
holder's owner token, and read as a bounded regular file (a FIFO, garbage or ``[]`` there is stale). A
process is signalled only when it carries the owner token of this cache (``reaper``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import quote

from rcyc_core.errors import FunctionError, InputError, PrerequisiteError, RcycError

from ...defaults import DEFAULT_BUCKET, DEFAULT_FUNCTION, DEFAULT_STACK_INSTANCES
from ...files import shown, unanswered
from ...function_spec import FunctionSpec, checked
from ...invocation import Invocation, Report, log_tail_lines
from ..emulator import reaper
from ..emulator.sandbox import payload
from . import loopback, replies
from .ownership import (StackNotAnswering, being_started, claim, ensure_state_dir, holder, lock_file,  # noqa: F401
                        locked, own_file, read_state, state_dir, state_file)  # - the client's names, as server and tests import them
from .s3_reads import StackS3
from .protocol import STATUS_PATH
from .starting import _compiled_once, _start_failure


class StackStarting(StackNotAnswering):
    """A stack of this cache holds its lock but has not yet said where it answers: starting, or stuck."""


def find_settled(patience: float = 900.0) -> RemoteStack | None:
    """``find``, waiting for a stack that another command is starting (it holds ``locked`` until the stack
    answers, or until a failed start is cleaned): two first calls at once use one stack, as two ``up`` do.
    Looked at again every 0.1 s rather than waited on: a starter that is itself stopped (Ctrl-Z) must not
    hold up a stack that is ready. A stack starting with nobody starting it (its starter was killed) is
    still StackStarting, at once."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return find()
        except StackStarting:
            if not being_started() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class StackStopped(PrerequisiteError):
    """The stack a command was using stopped (killed, crashed) while it ran: the command ends, as it would
    have refused to start without one, rather than failing every event that was left."""

    kind = "StackStopped"


class StackConflict(InputError):
    """``local up`` asked for a stack other than the one running."""

    kind = "StackConflict"


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
        """ValueError when a field has the wrong type (``checked``)."""
        own = {f.name: data[f.name] for f in fields(cls) if f.name != "function" and f.name in data}
        number = (int, float)
        checked(own, {"instances": int, "model": str, "bucket": str, "function_name": str, "max_waiting": int,
                      "event_queue": int, "read_timeout": number, "idle_seconds": number})
        for name in ("bucket", "function_name", "max_waiting", "event_queue", "read_timeout"):
            if name in own and own[name] is None:
                raise ValueError(f"{name} is null")
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
        """The state a stack wrote; ValueError when a field has the wrong type (an edited or
        damaged file), so that no reader meets a str where a dict was promised."""
        number = (int, float)
        own = checked({f.name: data.get(f.name) for f in fields(cls)},
                      {"pid": int, "endpoint": str, "s3_endpoint": str, "bucket": str, "config": dict, "runtime": str,
                       "started_at": number, "owner": str, "rie_path": str, "model": dict, "instance_pids": list})
        if not all(type(pid) is int for pid in own["instance_pids"] or []):
            raise ValueError("instance_pids are not pids")
        return cls(**{**own, "config": StackConfig.from_json(own["config"])})


class RemoteStack:
    """A client of a running stack: ``invoke`` has the same shape as a sandbox's."""

    def __init__(self, state: StackState):
        self.state = state
        self.endpoint_url = state.endpoint

    def status(self, timeout: float = 2.0) -> dict:
        code, body = loopback.request(self.endpoint_url + STATUS_PATH, timeout=timeout)
        if code != 200:
            raise loopback.StackAnswerError(f"the stack answered its status with {code}")
        return replies.status(body)

    def invoke(self, event: object, attempts: int = 6, function: str | None = None) -> Invocation:
        """Invoke through the stack's Lambda Invoke API, with the log tail and rcyc's REPORT header. A 429
        (every instance busy and the wait queue full) is tried again with backoff, up to ``attempts`` tries.

        A refusal is a FunctionError whose kind is the API's error type, as boto3 would name it
        (``TooManyRequestsException``, ``ResourceNotFoundException``; the status, "502", where it names none):
        a caller with a retry policy of its own (classify) tells the transient ones from the rest as it does
        on AWS. An answer that never came, was cut short or is no HTTP is ``EmulatorError``.

        ``function``: the name (or ARN) to invoke, as the user gave it; the stack's own name by default."""
        name = self.state.config.function_name if function is None else function
        # surrogatepass: a name from argv with undecodable bytes is still one path segment, which the stack
        # answers 404 as Lambda would, not a UnicodeEncodeError that ends the run
        url = f"{self.endpoint_url}/2015-03-31/functions/{quote(name, safe='', errors='surrogatepass')}/invocations"
        body, timeout = payload(event), self.state.config.function.timeout + 30
        started = time.perf_counter()
        for attempt in range(attempts):
            try:
                status, headers, answer = loopback.exchange(url, body, timeout, headers=INVOKE_HEADERS)
            except (OSError, ValueError) as exc:  # refused, reset, silent, cut short, no HTTP
                if not running(self.state.pid):  # liveness comes from the process: no retry brings a dead stack back
                    raise StackStopped(f"the local stack (pid {self.state.pid}) stopped: {unanswered(exc)}",
                                       hint="rcyc local up, then run the command again (finished results are kept)") from None
                raise FunctionError(f"the local stack did not answer: {unanswered(exc)}",
                                    kind="EmulatorError", hint="rcyc local status; rcyc local down && rcyc local up") from None
            if status == 200:
                break
            if status == 429 and attempt + 1 < attempts:
                time.sleep(0.05 * 2 ** attempt)
                continue
            error_type = headers.get("x-amzn-errortype", "")
            raise FunctionError(f"the local stack refused the invoke: {replies.refusal(status, error_type, answer)}",
                                kind=replies.refusal_kind(status, error_type),
                                hint="rcyc local status; rcyc local down && rcyc local up")
        wall_ms = (time.perf_counter() - started) * 1000
        logs = log_tail_lines(headers.get("x-amz-log-result"))
        try:
            response = replies.invoke_answer(answer.decode("utf-8", "replace"), headers.get("x-amz-function-error"))
        except FunctionError as exc:
            exc.logs = logs
            raise
        return Invocation(response, Report(**replies.report(headers.get("x-rcyc-report"))), wall_ms, logs)


# What the stack's own client asks for: the log tail, and rcyc's REPORT figures with the instance's index.
INVOKE_HEADERS = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail", "X-Rcyc-Report": "1"}


def find() -> RemoteStack | None:
    """The running stack, or None when none lives (what a dead one left, processes, containers and its
    state file, is cleaned). A living stack that does not answer is StackNotAnswering: never None, so no
    caller starts a second stack beside a slow one."""
    reaper.sweep_orphans()
    alive, written = holder(), read_state()
    if alive is None:
        clean_stale(written)
        return None
    state = typed_state(written)
    if state is None and written is not None and written.get("owner") == alive["owner"]:
        raise StackNotAnswering(f"the local stack of this cache (pid {alive['pid']}) is running, but its state file "
                                f"{state_file()} is damaged (not as the stack wrote it)",
                                hint="Stop the stack (rcyc local down) and start it again.")
    if state is None or state.owner != alive["owner"]:
        raise StackStarting(f"a local stack of this cache (pid {alive['pid']}) is running but has not said where "
                                "it answers yet: it is starting, or stuck", hint="Wait for it, or stop it: rcyc local down")
    stack = RemoteStack(state)
    try:
        stack.status()
    except TimeoutError:
        raise StackNotAnswering(f"the local stack (pid {state.pid}) is running but did not answer in 2 s: it is "
                                "stopped or overloaded", hint="rcyc local down stops it; or wait and try again") from None
    except (OSError, ValueError) as exc:  # refused, or an answer no stack gives: its address is not its own
        raise StackNotAnswering(f"the local stack (pid {state.pid}) is running but did not answer as a stack does on "
                                f"{shown(state.endpoint)[:80]} ({exc})",
                                hint="Stop it and start it again: rcyc local down && rcyc local up") from None
    return stack


def typed_state(written: dict | None) -> StackState | None:
    """The state file's object (``read_state``) as a StackState; None when it is not one a stack wrote."""
    if written is None or any(written.get(name) is None for name in ("pid", "endpoint", "config", "owner")):
        return None
    try:
        return StackState.from_json(written)
    except (KeyError, TypeError, ValueError, RcycError):
        return None


def clean_stale(state: dict | None) -> None:
    """What a dead stack left (its process was killed with -9, or crashed): the processes and containers
    carrying its owner token of this cache are stopped, and the state file removed (whatever it holds).
    Only processes with the token are signalled: a recorded pid that belongs to something else, or to
    another cache's stack, never is. Call only when no stack holds the lock."""
    owner = (state or {}).get("owner")
    if isinstance(owner, str) and owner.startswith(reaper.cache_tag()):
        reaper.stop_owned(owner)
        if state.get("runtime") == "docker":
            reaper.remove_owned_containers(owner)
    if holder() is None:  # not replaced meanwhile by a new stack
        with contextlib.suppress(OSError):
            state_file().unlink()


def find_or_up(report=None) -> tuple[RemoteStack, object]:
    """The running stack, else one started with the defaults (as `rcyc local up`), and a client of its S3:
    the one S3 every local command (invoke-local, upload-image --local, classify --local) works on. Its reads
    come from the stack over the loopback socket; boto3 is imported for the first call that is not a read."""
    from ...cloud.aws import s3_client
    from ...config import env_seconds
    from ...defaults import DEFAULT_STACK_IDLE_SECONDS, LOCAL_CREDENTIALS, LOCAL_REGION

    running = find_settled()
    if running is None:
        # nobody owns it once the command is done, so it stops by itself when idle (like invoke-local's)
        idle = env_seconds("RCYC_STACK_IDLE_SECONDS", DEFAULT_STACK_IDLE_SECONDS)
        if report is not None:
            report.status(f"starting the local stack; it stops after {idle / 60:.3g} minutes idle (rcyc local down stops it now)")
        running = up(StackConfig(function=FunctionSpec(runtime="process"), idle_seconds=idle))
    endpoint = running.state.s3_endpoint
    return running, StackS3(running.endpoint_url, lambda: s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS))


def up(config: StackConfig, wait_seconds: float = 900.0) -> RemoteStack:
    """Start the stack in the background and wait until every instance is warm. Under the stack's lock:
    a concurrent ``up`` waits, then finds this stack. A running stack started otherwise is refused."""
    with locked():
        existing = find()
        if existing:
            if (difference := config_difference(config, existing.state.config.to_json())):
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
    log_path = own_file(directory / "stack.log")
    owner = reaper.new_owner("stack")
    # The stack carries its own owner token, so that it too is proven ours before any signal (down, clean).
    env = {**_compiled_once(os.environ), reaper.OWNER_VARIABLE: owner}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "rcyc_cli.local.stack.server", json.dumps(config.to_json()), owner],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=env)
    try:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise _start_failure(process.returncode, log_path)
            state = typed_state(read_state())
            if state and state.owner == owner and state.pid == process.pid:
                stack = RemoteStack(state)
                with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                    stack.status()
                    return stack
            time.sleep(0.02)  # a state file is a small read: looking often costs nothing, waiting 0.1 s did
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
        clean_stale(None)  # its state file, if it wrote one (it holds the lock no more)
        raise


def down(timeout: float = 30.0) -> bool:
    """Stop the stack and everything it started. Returns False if none was running (a dead one's leftovers
    are still stopped). The stack is signalled only once proven ours: the lock's holder, carrying the
    owner token of this cache; a stopped (SIGSTOP) stack is continued so that it can stop."""
    with locked():
        alive, state = holder(), read_state()
        if alive is None:
            clean_stale(state)
            return False
        pid, owner = alive["pid"], alive["owner"]
        if pid is None or not (owner or "").startswith(reaper.cache_tag()) or pid not in reaper.owned_pids(owner):
            raise StackNotAnswering(f"the stack lock {lock_file()} is held by a process that is not proven to be this "
                                    "cache's stack; nothing was signalled", hint=f"See who holds it: fuser {lock_file()}")
        for sig in (signal.SIGTERM, signal.SIGCONT):  # the stack stops its instances and its S3, then exits
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while running(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)  # it did not stop by itself
                break
            time.sleep(0.05)
        reaper.stop_owned(owner)  # whatever it could not stop goes too
        if (state or {}).get("runtime") == "docker":
            reaper.remove_owned_containers(owner)
        clean_stale(None)
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
    try:
        status = stack.status()
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise StackNotAnswering(f"the local stack (pid {stack.state.pid}) stopped answering "
                                f"({getattr(exc, 'reason', exc)})", hint="rcyc local down stops it") from None
    return {**status, "endpoint": stack.endpoint_url, "runtime": stack.state.runtime}
