"""The local stack: an embedded S3 (moto's real HTTP server) and function sandboxes, each a real Lambda
Runtime Interface Emulator running the real ``awslambdaric`` with ``lambda/app.handler`` as its child.

Everything binds to 127.0.0.1 on free ports and is stopped by its own handle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core.errors import FunctionError, PrerequisiteError

from .paths import FUNCTION_DIR, require_checkout

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
LOCAL_REGION = "us-east-1"
# Throwaway credentials, only ever sent to the local emulators: never the user's own.
LOCAL_CREDENTIALS = {"aws_access_key_id": "rcyc-local", "aws_secret_access_key": "rcyc-local-not-a-secret"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise FunctionError("the emulator exited while starting")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise FunctionError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f} s")


class EmbeddedS3:
    """moto's S3 server on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request to stderr by default; that is noise in a CLI (and in test output).
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url: str | None = None

    def start(self) -> "EmbeddedS3":
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Report:
    """The emulator's figures for one invocation (its REPORT line, plus its INIT REPORT when cold)."""

    duration_ms: float | None = None
    billed_ms: float | None = None
    init_ms: float | None = None
    memory_mb: int | None = None

    @property
    def cold(self) -> bool:
        return self.init_ms is not None

    def to_dict(self) -> dict:
        return {"cold": self.cold, **self.to_dict_raw()}

    def to_dict_raw(self) -> dict:
        return {"init_ms": self.init_ms, "duration_ms": self.duration_ms, "billed_ms": self.billed_ms,
                "memory_mb": self.memory_mb}


@dataclass
class Invocation:
    response: object
    report: Report
    wall_ms: float
    logs: list[str] = field(default_factory=list)


REPORT_RE = re.compile(r"REPORT RequestId: (?P<id>\S+)(?P<rest>.*)")
INIT_RE = re.compile(r"INIT REPORT\(durationMs: (?P<ms>[\d.]+)\)")
FIELD_RE = re.compile(r"(Init Duration|Duration|Billed Duration|Memory Size): ([\d.]+)")


def parse_report(lines: list[str]) -> Report:
    """Figures from the emulator output written during one invocation."""
    report = Report()
    for line in lines:
        if (match := INIT_RE.search(line)):
            report.init_ms = float(match["ms"])
        elif (match := REPORT_RE.search(line)):
            fields = dict(FIELD_RE.findall(match["rest"]))
            report.duration_ms = float(fields["Duration"]) if "Duration" in fields else None
            report.billed_ms = float(fields["Billed Duration"]) if "Billed Duration" in fields else None
            report.memory_mb = int(float(fields["Memory Size"])) if "Memory Size" in fields else None
    return report


LOG_ABOVE = "The function's log is above."


def decode_reply(text: str) -> object:
    """The function's answer as the emulator (or Lambda) returns it. A timeout, a body that is not JSON and
    an error object (which comes back with HTTP 200) are FunctionErrors."""
    if text.startswith("Task timed out"):
        raise FunctionError(f"the function timed out ({text.strip()})", kind="Timeout",
                            hint="Raise --timeout, or look in the log above for what the handler waited on.")
    try:
        response = json.loads(text)
    except ValueError:
        raise FunctionError(f"the function returned something that is not JSON: {text[:120]!r}", kind="BadResponse",
                            hint=LOG_ABOVE) from None
    if isinstance(response, dict) and "errorType" in response and "errorMessage" in response:
        raise FunctionError(f"the function failed: {response['errorType']}: {response['errorMessage']}",
                            kind=str(response["errorType"]), hint=LOG_ABOVE)
    return response


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


class Sandbox:
    """One function instance behind an emulator: one request at a time, as one Lambda sandbox.

    Subclasses start and stop it and give access to the emulator's output; invoking is shared.
    """

    runtime = "?"
    port: int | None = None
    timeout: int = 180
    _log_offset = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def invoke(self, event: object) -> Invocation:
        """Post one event to the emulator; raise FunctionError if the function failed."""
        body = json.dumps(event).encode()
        request = urllib.request.Request(self.endpoint_url + INVOKE_PATH, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + 15) as reply:
                raw = reply.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise self._failure(f"the emulator did not answer: {reason}", "EmulatorError") from None
        wall_ms = (time.perf_counter() - started) * 1000
        lines = self._new_log_lines(wait_for_report=True)
        try:
            response = decode_reply(raw.decode("utf-8", "replace"))
        except FunctionError as exc:
            exc.logs = lines
            raise
        return Invocation(response, parse_report(lines), wall_ms, lines)

    def _failure(self, message: str, kind: str) -> FunctionError:
        error = FunctionError(message, kind=kind, hint=LOG_ABOVE)
        error.logs = self._new_log_lines(wait_for_report=False)
        return error

    def _new_log_lines(self, wait_for_report: bool) -> list[str]:
        # The emulator writes REPORT just after it answers; give it a moment to land in the log.
        deadline = time.monotonic() + (1.0 if wait_for_report else 0)
        while True:
            chunk = self.read_log()[self._log_offset:]
            if not wait_for_report or b"REPORT RequestId" in chunk or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        end = chunk.rfind(b"\n") + 1
        self._log_offset += end
        return chunk[:end].decode("utf-8", "replace").splitlines()

    def read_log(self) -> bytes:
        """Everything the emulator and the function have written so far."""
        raise NotImplementedError

    def start(self) -> "Sandbox":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class ProcessSandbox(Sandbox):
    """The emulator as a process on this machine, with the runtime client as its child."""

    runtime = "process"

    def __init__(self, rie: Path, env: dict[str, str], timeout: int = 180, memory: int = 1024,
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
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(self.function_dir),
            "RCYC_CACHE_DIR": str(self._workdir / "tmp" / "rcyc"),
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
        self._workdir = Path(tempfile.mkdtemp(prefix="rcyc-sandbox-"))
        (self._workdir / "tmp").mkdir()
        self.port = free_port()
        command = [
            str(self.rie),
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            sys.executable, "-m", "awslambdaric", self.handler,
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
        wait_for_port(self.port, ready_timeout, alive=lambda: self.process.poll() is None)
        return self

    def read_log(self) -> bytes:
        return self.log_path.read_bytes()

    def stop(self) -> None:
        if self.process:
            # The whole session: the runtime child too, even when the emulator itself already died.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self.process.wait()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


class ContainerSandbox(Sandbox):
    """The function image in a container with host networking; the host's pinned emulator is mounted in
    and run as the entrypoint on free loopback ports, with the image's entry script as its child."""

    runtime = "docker"
    RIE_IN_CONTAINER = "/opt/rcyc/aws-lambda-rie"

    def __init__(self, client, image: str, rie: Path, env: dict[str, str], timeout: int = 180, memory: int = 1024,
                 name: str = "rcyc-local"):
        self.client, self.image, self.rie = client, image, Path(rie)
        self.timeout, self.memory, self.name, self.extra_env = timeout, memory, name, env
        self.container = None

    def start(self, ready_timeout: float = 20.0) -> "ContainerSandbox":
        # Sandboxes that could not be removed (their engine stopped under them) are removed now.
        for stale in self.client.containers.list(all=True, filters={"label": "rcyc.sandbox", "status": "exited"}):
            stale.remove(force=True)
        self.port = free_port()
        entrypoint = [
            self.RIE_IN_CONTAINER,
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            "/usr/local/bin/rcyc-entry",
        ]
        env = function_environment(self.name, self.timeout, self.memory, self.extra_env)
        from .docker_ops import engine_gone

        try:
            self.container = self.client.containers.run(
                self.image, command=["app.handler"], entrypoint=entrypoint, environment=env, detach=True,
                network_mode="host", volumes={str(self.rie.resolve()): {"bind": self.RIE_IN_CONTAINER, "mode": "ro"}},
                labels={"rcyc.sandbox": self.name}, mem_limit=f"{self.memory}m",
            )
        except Exception as exc:  # docker.errors.* or a broken connection: one line, not a traceback
            if hasattr(exc, "explanation"):
                raise FunctionError(f"the engine could not start the function container: {exc.explanation}",
                                    kind="ContainerError", hint="Check the image (rcyc build) and the engine's log.") from None
            raise engine_gone(exc, "while starting the function container") from None

        def alive() -> bool:
            try:
                self.container.reload()
            except Exception:
                return False
            return self.container.status in ("created", "running")

        try:
            wait_for_port(self.port, ready_timeout, alive=alive)
        except FunctionError as exc:
            exc.logs = self.read_log().decode("utf-8", "replace").splitlines()[-20:]
            raise
        return self

    def read_log(self) -> bytes:
        try:
            return self.container.logs(stdout=True, stderr=True) if self.container else b""
        except Exception:  # the engine is gone: there is no log to read any more
            return b""

    def invoke(self, event: object) -> Invocation:
        from .docker_ops import answers, engine_gone

        try:
            return super().invoke(event)
        except FunctionError as exc:
            if exc.kind == "EmulatorError" and not answers(self.client):
                raise engine_gone(exc, "during the invocation") from None
            raise

    def stop(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:  # already gone (engine restarted, removed by hand)
                pass
            self.container = None
