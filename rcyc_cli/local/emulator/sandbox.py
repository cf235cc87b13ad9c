"""Function sandboxes: the real Lambda Runtime Interface Emulator running the real ``awslambdaric`` with
``lambda/app.handler`` as its child, one request at a time, as one Lambda sandbox.

Everything binds to 127.0.0.1 on free ports and is stopped by its own handle.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rcyc_core.errors import EventError, FunctionError, PrerequisiteError

from ... import leftovers
from ...defaults import DEFAULT_MEMORY, DEFAULT_TIMEOUT, LAMBDA_MAX_PAYLOAD, LOCAL_CREDENTIALS, LOCAL_REGION
from ...files import unanswered
from ...invocation import LOG_ABOVE, Invocation, decode_reply, parse_report, with_measured_peak
from ...paths import FUNCTION_DIR, require_checkout
from .ports import free_port, wait_for_port

# A function that died without a word (its log could not even be written: a full disk, the memory gone)
NO_LOG = "It left no log: check this machine's free disk space (the cache, /tmp) and memory, then run again."
# The runtime was killed mid-invoke: in a container that is its memory limit; on this machine, memory too
KILLED = "The function's process was killed mid-invoke, most often for memory: raise --memory, or send fewer records per event."

INVOKE_PATH = "/2015-03-31/functions/function/invocations"

# The runtime client as ``python -m awslambdaric HANDLER`` starts it, plus a watcher thread: when the rcyc
# process owning this sandbox is gone (even killed with -9, which nothing can catch) it kills its parent,
# the emulator, and exits; when the emulator is gone, it exits. So no emulator or runtime outlives its owner
# by more than a moment. (The emulator is a Go binary: the runtime, its child, is where Python can watch.)
RUNTIME_BOOT = """
import os, sys, threading, time

def _rcyc_watch(owner=int(os.environ.get("RCYC_OWNER_PID") or 0), started=os.environ.get("RCYC_OWNER_START", "")):
    parent = os.getppid()

    def owner_gone():
        try:
            with open(f"/proc/{owner}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return fields[0] == "Z" or fields[19] != started
        except (OSError, IndexError):
            return True

    while True:
        time.sleep(0.25)
        if os.getppid() != parent:
            os._exit(1)
        if owner and owner_gone():
            try:
                os.kill(parent, 9)
            except OSError:
                pass
            os._exit(1)

threading.Thread(target=_rcyc_watch, name="rcyc-owner-watch", daemon=True).start()
from awslambdaric.__main__ import main
main(sys.argv)
"""


def owner_identity() -> dict[str, str]:
    """This process's pid and start time (pids are reused; the pair is not), for the runtime's watcher."""
    try:
        started = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return {}
    return {"RCYC_OWNER_PID": str(os.getpid()), "RCYC_OWNER_START": started}


def function_environment(name: str, timeout: int, memory: int, extra: dict[str, str]) -> dict[str, str]:
    """What Lambda sets for a function, plus rcyc's own settings. Credentials are throwaway local ones."""
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


def payload(event: object) -> bytes:
    """The request body for ``event``, refused (bad input, before posting) when Lambda would refuse it:
    more than the 6 MB a synchronous invoke carries, or not strict JSON (NaN, Infinity)."""
    try:
        body = json.dumps(event, allow_nan=False).encode()
    except (ValueError, TypeError) as exc:
        raise EventError(f"the event cannot be sent as JSON: {exc}") from None
    if len(body) > LAMBDA_MAX_PAYLOAD:
        raise EventError(f"the event is {len(body):,} bytes, more than the {LAMBDA_MAX_PAYLOAD:,} a Lambda invoke carries",
                         hint="Send fewer records per event (--batch-size, --concurrency), or several events.")
    return body


class Sandbox:
    """One function instance behind an emulator: one request at a time, as one Lambda sandbox.

    Subclasses start and stop it and give access to the emulator's output; invoking is shared.
    """

    runtime = "?"
    port: int | None = None
    timeout: int = DEFAULT_TIMEOUT
    _log_pending = b""  # read from the log, not yet handed out as whole lines

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def invoke(self, event: object) -> Invocation:
        """Post one event to the emulator; raise FunctionError if the function failed."""
        import http.client  # (here: a client of the warm stack imports this module and never invokes)
        import urllib.error
        import urllib.request

        body = payload(event)
        request = urllib.request.Request(self.endpoint_url + INVOKE_PATH, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + 15) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            # refused, reset, timed out, or an answer cut short or not HTTP (an emulator that died mid-reply)
            raise self._failure(f"the emulator did not answer: {unanswered(exc)}", "EmulatorError") from None
        wall_ms = (time.perf_counter() - started) * 1000
        lines = self._new_log_lines(wait_for_report=True)
        try:
            response = decode_reply(raw.decode("utf-8", "replace"))
        except FunctionError as exc:
            exc.logs = lines
            if not lines and exc.hint == LOG_ABOVE:
                exc.hint = NO_LOG
            raise
        return Invocation(response, parse_report(lines), wall_ms, lines)

    def _refusal(self, exc) -> FunctionError:
        """The emulator answered with an error status. A 502 carries Lambda's own error object when the
        runtime died mid-invoke (``Runtime.ExitError``: a crash, ``os._exit``, a kill for memory) or its init
        failed: that is the function's failure, as Lambda reports it, not the emulator's. Any other status
        (or a 502 without that object) is the emulator's."""
        import http.client

        try:
            # as much as the function may answer: Lambda's error object is the function's answer, and one cut
            # short would not parse and read as the emulator's failure
            body = exc.read(LAMBDA_MAX_PAYLOAD + 1).decode("utf-8", "replace")
        except (OSError, ValueError, http.client.HTTPException):  # cut short: its status is what it said
            body = ""
        if exc.code == 502:
            try:
                decode_reply(body)
            except FunctionError as failure:
                if failure.kind not in ("BadResponse", "Timeout"):
                    error = self._failure(failure.message, failure.kind)
                    if "signal: killed" in failure.message:
                        error.hint = KILLED
                    return error
        said = f": {body.strip()[:200]}" if body.strip() else ""
        return self._failure(f"the emulator answered HTTP {exc.code} ({exc.reason}){said}", "EmulatorError")

    def _failure(self, message: str, kind: str) -> FunctionError:
        logs = self._new_log_lines(wait_for_report=False)
        error = FunctionError(message, kind=kind, hint=LOG_ABOVE if logs else NO_LOG)
        error.logs = logs
        return error

    def _new_log_lines(self, wait_for_report: bool) -> list[str]:
        # The emulator writes REPORT just after it answers; give it a moment to land in the log. Only what is
        # new since the last call is read, so the cost per invoke stays flat however long the log grows.
        deadline = time.monotonic() + (1.0 if wait_for_report else 0)
        while True:
            self._log_pending += self.read_new_log()
            if not wait_for_report or b"REPORT RequestId" in self._log_pending or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        end = self._log_pending.rfind(b"\n") + 1
        lines, self._log_pending = self._log_pending[:end], self._log_pending[end:]
        return lines.decode("utf-8", "replace").splitlines()

    def read_new_log(self) -> bytes:
        """What the emulator and the function have written since the last call."""
        raise NotImplementedError

    def read_log(self) -> bytes:
        """Everything the emulator and the function have written so far (for failures and tests)."""
        raise NotImplementedError

    def alive(self) -> bool:
        """Whether the sandbox still runs (a dead one is replaced by its pool)."""
        return True

    def start(self) -> "Sandbox":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class ProcessSandbox(Sandbox):
    """The emulator as a process on this machine, with the runtime client as its child."""

    runtime = "process"

    def __init__(self, rie: Path, env: dict[str, str], timeout: int = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY,
                 name: str = "rcyc-local", function_dir: Path = FUNCTION_DIR, handler: str = "app.handler"):
        self.rie, self.timeout, self.memory, self.name = Path(rie), timeout, memory, name
        self.function_dir, self.handler = function_dir, handler
        self.extra_env = env
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._workdir: Path | None = None

    @property
    def log_path(self) -> Path:
        return self._workdir / "emulator.log"

    def environment(self) -> dict[str, str]:
        # A clean environment, as Lambda gives: nothing of the user's shell (and none of their AWS keys).
        return function_environment(self.name, self.timeout, self.memory, {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self._workdir),
            "TMPDIR": str(self._workdir / "tmp"),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(self.function_dir), str(FUNCTION_DIR)])),
            # No PYTHONDONTWRITEBYTECODE: the function's code is compiled once (into its __pycache__, as the
            # CLI's own is), not again at every instance start.
            "LAMBDA_TASK_ROOT": str(self.function_dir),
            "RCYC_CACHE_DIR": str(self._workdir / "tmp" / "rcyc"),
            **owner_identity(),
            **self.extra_env,
        })

    @property
    def runtime_pid(self) -> int | None:
        """The runtime client (the function's own process), child of the emulator."""
        try:
            # The Go emulator may fork from any of its threads: look at every task's children.
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
        except (OSError, AttributeError):
            pass
        return None

    def start(self, ready_timeout: float = 10.0) -> "ProcessSandbox":
        require_checkout()
        self._workdir = leftovers.temp_dir("sandbox")  # named by its owner: swept if this process is killed
        (self._workdir / "tmp").mkdir()
        self.port = free_port()
        command = [
            str(self.rie),
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            sys.executable, "-c", RUNTIME_BOOT, self.handler,
        ]
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                command, cwd=self.function_dir, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches us, not it: we stop it ourselves
            )
        except OSError as exc:
            raise PrerequisiteError(f"cannot run the emulator {self.rie}: {exc.strerror}", hint="Reinstall it: rcyc rie install --force.") from None
        finally:
            log.close()
        try:
            wait_for_port(self.port, ready_timeout, alive=lambda: self.process.poll() is None)
        except FunctionError as exc:  # what it said before it died (or while it did not listen) is the why
            exc.logs = self.read_log().decode("utf-8", "replace").splitlines()[-20:]
            raise
        return self

    def invoke(self, event: object) -> Invocation:
        """As a sandbox invokes, plus the runtime's real peak memory during this invocation (its peak RSS,
        reset before the request through ``/proc/PID/clear_refs``). The process runtime cannot hold the
        function to --memory the way Lambda does (an address-space limit would refuse the virtual memory
        numpy and the fetch threads reserve long before their resident memory gets near it), so the report
        says ``memory_enforced: false`` and a peak above --memory is flagged by the CLI."""
        pid = self.runtime_pid
        if pid:
            _reset_peak(pid)
        answer = super().invoke(event)
        peak = _peak_mb(self.runtime_pid or pid)
        answer.report.peak_mb, answer.report.memory_enforced = peak, False
        answer.logs = with_measured_peak(answer.logs, peak)
        return answer

    _log_read = 0  # bytes of the log file already read

    def read_new_log(self) -> bytes:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_read)
            data = log.read()
        self._log_read += len(data)
        return data

    def read_log(self) -> bytes:
        return self.log_path.read_bytes()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process:
            # The whole session: the runtime child too, even when the emulator itself already died. The emulator
            # starts its runtime in a process group of its own (in its session): signalling the emulator's group
            # left the runtime to its watcher, alive up to a quarter second after stop() returned.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not _signal_session(self.process.pid, sig):
                    break
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    continue
                if _session_gone(self.process.pid, timeout=2):
                    break
            self.process.wait()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak resident set size (VmHWM)
    except OSError:
        pass


def _peak_mb(pid: int | None) -> float | None:
    """The peak resident memory (VmHWM) of ``pid`` in MB, or None when it cannot be read."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _session_members(sid: int) -> list[int]:
    """The live processes (zombies are not) of the session ``sid``: the emulator, its leader, and its runtime."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[3] == str(sid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _signal_session(sid: int, sig: int) -> bool:
    """``sig`` to every process of the session ``sid``; False when none is left."""
    members = _session_members(sid)
    for pid in members:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return bool(members)


def _session_gone(sid: int, timeout: float) -> bool:
    """Whether every process of the session ``sid`` has ended within ``timeout`` seconds. Waiting for the
    emulator alone let its runtime, signalled with it, still be exiting when stop() returned."""
    deadline = time.monotonic() + timeout
    while _session_members(sid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
