"""The warm local stack's process (``python -m rcyc_cli.local.stack_server CONFIG``): the embedded S3, a
pool of function instances, and an HTTP dispatcher routing each invoke to an idle instance. Runs until
SIGTERM; stops everything it started."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rcyc_core.errors import FunctionError, RcycError

from ..cloud import aws
from ..defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from ..exit_status import for_error
from ..model_source import resolve_model
from ..reporting import Reporter
from .runtime import FunctionLauncher, FunctionSpec
from .s3_server import EmbeddedS3
from .sandbox import INVOKE_PATH
from .stack import STATUS_PATH, StackConfig, state_file


def serve(config: StackConfig) -> None:
    """The background process: S3, pool, dispatcher. Runs until SIGTERM; stops all it started."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    say = Reporter(status=lambda message: print(message, flush=True))
    s3_server = EmbeddedS3().start()
    pool = server = None
    try:
        spec = FunctionSpec(runtime=config.runtime, flavor=config.flavor, base_image=config.base_image,
                            ca_bundle=Path(config.ca_bundle) if config.ca_bundle else None, rie=config.rie,
                            timeout=config.timeout, memory=config.memory)
        launcher = FunctionLauncher(spec, say)
        manifest, model_dir = resolve_model(Path(config.model) if config.model else None)
        s3 = aws.s3_client(s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        # Refresh 0: a model uploaded by a later invoke-local --model is live on the next request.
        pool = launcher.start(s3, config.bucket, manifest, model_dir, config.instances, warm=True, refresh_seconds=0)
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
        raise SystemExit(for_error(exc)) from None
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
