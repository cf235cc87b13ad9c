"""The warm local stack (``rcyc local up``): one background process holding the embedded S3 and a pool of
function instances, answering the emulator's invoke API on its own 127.0.0.1 port and routing each request
to an idle instance. Its state file lets later commands find it; a state whose process is gone or does not
answer is stale, and is removed rather than trusted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rcyc_core.errors import FunctionError, PrerequisiteError, RcycError

from .local import INVOKE_PATH, Invocation, Report, decode_reply
from .options import DEFAULT_BUCKET
from .paths import cache_dir

STATUS_PATH = "/rcyc/status"


def state_dir() -> Path:
    return cache_dir() / "local"


def state_file() -> Path:
    return state_dir() / "state.json"


@dataclass
class StackConfig:
    instances: int = 2
    runtime: str = "process"
    model: str | None = None
    bucket: str = DEFAULT_BUCKET
    rie: str | None = None
    flavor: str = "slim"
    base_image: str | None = None
    ca_bundle: str | None = None
    timeout: int = 180
    memory: int = 1024


class RemoteStack:
    """A client of a running stack: ``invoke`` has the same shape as a sandbox's."""

    def __init__(self, state: dict):
        self.state = state
        self.endpoint_url = state["endpoint"]

    def status(self, timeout: float = 2.0) -> dict:
        with urllib.request.urlopen(self.endpoint_url + STATUS_PATH, timeout=timeout) as reply:
            return json.loads(reply.read())

    def invoke(self, event: object) -> Invocation:
        request = urllib.request.Request(self.endpoint_url + INVOKE_PATH, data=json.dumps(event).encode(), method="POST")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.state["config"]["timeout"] + 30) as reply:
                body, header = reply.read(), reply.headers.get("X-Rcyc-Report")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise FunctionError(f"the local stack did not answer: {getattr(exc, 'reason', exc)}",
                                kind="EmulatorError", hint="rcyc local status; rcyc local down && rcyc local up") from None
        wall_ms = (time.perf_counter() - started) * 1000
        meta = json.loads(header) if header else {}
        try:
            response = decode_reply(body.decode("utf-8", "replace"))
        except FunctionError as exc:
            exc.logs = meta.get("logs", [])
            raise
        return Invocation(response, Report(**meta.get("report", {})), wall_ms, meta.get("logs", []))


def is_stack(pid: int) -> bool:
    """Whether ``pid`` is a running rcyc stack (not a stale pid that now belongs to something else)."""
    try:
        return running(pid) and b"rcyc_cli.stack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def read_state() -> dict | None:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None


def find() -> RemoteStack | None:
    """The running stack, or None. A state file whose process is gone (or is not a stack) is removed; a
    stack that is alive but slow to answer is left alone."""
    state = read_state()
    if state is None:
        return None
    if not isinstance(state.get("pid"), int) or not is_stack(state["pid"]):
        state_file().unlink(missing_ok=True)
        return None
    stack = RemoteStack(state)
    try:
        stack.status()
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return stack


def up(config: StackConfig, wait_seconds: float = 900.0) -> RemoteStack:
    """Start the stack in the background and wait until every instance is warm."""
    existing = find()
    if existing:
        return existing
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "stack.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "rcyc_cli.stack", json.dumps(asdict(config))],
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
    except BaseException:  # not ready, an error or Ctrl-C: the half-started stack stops everything it started
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        raise


def down(timeout: float = 30.0) -> bool:
    """Stop the stack and everything it started. Returns False if none was running."""
    state = read_state()
    if state is None or not isinstance(state.get("pid"), int) or not is_stack(state["pid"]):
        state_file().unlink(missing_ok=True)  # stale: its pid may belong to something else now; never signal it
        return False
    pid = state["pid"]
    os.kill(pid, signal.SIGTERM)  # the stack stops its instances and its S3, then exits
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            # It did not stop by itself: kill it and the emulators it recorded (each in a session of its own).
            for group in [pid, *state.get("instance_pids", [])]:
                try:
                    os.killpg(group, signal.SIGKILL)
                except OSError:
                    pass
            break
        time.sleep(0.05)
    state_file().unlink(missing_ok=True)
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


def serve(config: StackConfig) -> None:
    """The background process: S3, pool, dispatcher. Runs until SIGTERM; stops all it started."""
    from rcyc_core.function import function_environment

    from . import s3 as s3ops
    from .invoke_local import Options, choose_runtime, sandbox_factory
    from .local import LOCAL_CREDENTIALS, LOCAL_REGION, EmbeddedS3
    from .models import resolve_model
    from .pool import Pool
    from . import rie

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    s3_server = EmbeddedS3().start()
    pool = server = None
    try:
        s3 = s3ops.client(s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        s3ops.ensure_private_bucket(s3, config.bucket, LOCAL_REGION)
        manifest, model_dir = resolve_model(Path(config.model) if config.model else None)
        s3ops.upload_model(s3, config.bucket, manifest, model_dir)
        options = Options([], model=None, bucket=config.bucket, rie=config.rie, timeout=config.timeout, memory=config.memory,
                          runtime=config.runtime, flavor=config.flavor, base_image=config.base_image,
                          ca_bundle=Path(config.ca_bundle) if config.ca_bundle else None)
        # Refresh 0: a model uploaded by a later invoke-local --model is live on the next request.
        env = {**function_environment(config.bucket, refresh_seconds=0), "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url}
        client = choose_runtime(config.runtime, lambda message: print(message, flush=True), config.base_image)
        factory = sandbox_factory(options, client, rie.locate(config.rie), env, lambda message: print(message, flush=True))
        pool = Pool(factory, config.instances).start(warm=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(pool, s3_server.endpoint_url, config))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state = {"pid": os.getpid(), "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
                 "s3_endpoint": s3_server.endpoint_url, "bucket": config.bucket, "config": asdict(config),
                 "runtime": pool.instances[0].sandbox.runtime, "started_at": time.time(),
                 "instance_pids": [i.sandbox.process.pid for i in pool.instances if getattr(i.sandbox, "process", None)]}
        partial = state_file().with_suffix(".part")
        partial.write_text(json.dumps(state, indent=2))
        os.replace(partial, state_file())  # readers never see half a state file
        print(f"ready: {state['endpoint']}", flush=True)
        stopping.wait()
    except RcycError as exc:
        print(f"error: {exc.message}", flush=True)
        raise SystemExit(exc.exit_code) from None
    finally:
        if server:
            server.shutdown()
        if pool:
            pool.stop()
        s3_server.stop()
        try:
            if json.loads(state_file().read_text()).get("pid") == os.getpid():
                state_file().unlink()
        except (OSError, ValueError):
            pass


def _handler(pool, s3_endpoint: str, config: StackConfig):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the stack log is for the stack's own events
            pass

        def _send(self, body: dict, header: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if header is not None:
                self.send_header("X-Rcyc-Report", json.dumps(header))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path != STATUS_PATH:
                self.send_error(404)
                return
            self._send({"pid": os.getpid(), "s3_endpoint": s3_endpoint, "bucket": config.bucket,
                        "instances": [instance.to_dict() for instance in pool.instances]})

        def do_POST(self):
            if self.path != INVOKE_PATH:
                self.send_error(404)
                return
            event = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
            try:
                answer, instance = pool.invoke(event)
            except FunctionError as exc:
                self._send({"errorType": exc.kind, "errorMessage": exc.message})
                return
            self._send(answer.response, {"report": answer.report.to_dict_raw(), "instance": instance.index,
                                         "logs": answer.logs[-50:]})

    return Handler


if __name__ == "__main__":
    serve(StackConfig(**json.loads(sys.argv[1])))
