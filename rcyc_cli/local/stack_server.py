"""The warm local stack's process (``python -m rcyc_cli.local.stack_server CONFIG``): the embedded S3, a
pool of function instances, and the Lambda Invoke API (``invoke_api``) routing each invoke to an idle
instance. Runs until SIGTERM; stops everything it started."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from rcyc_core.errors import RcycError

from ..cloud import aws
from ..defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from ..exit_status import for_error
from ..model_source import resolve_model
from ..reporting import Reporter
from . import invoke_api, reaper
from .admission import Admission, EventQueue, FaultSwitch
from .invoke_api import Api, StackHTTPServer
from .invoke_protocol import EMULATOR_ALIAS, EXECUTED_VERSION
from .runtime import FunctionLauncher, FunctionSpec
from .s3_server import EmbeddedS3
from .stack import STATUS_PATH, StackConfig, state_file


def serve(config: StackConfig, owner: str | None = None) -> None:
    """The background process: S3, pool, dispatcher. Runs until SIGTERM (or SIGHUP, SIGINT); stops all it
    started. Every instance carries ``owner`` (``reaper``): if this process is killed with -9, the next
    ``local status``/``down``/``up`` finds and stops them by it."""
    stopping = threading.Event()
    # The handler only records the signal (Event.set there could deadlock on the Event's own lock), and the
    # main thread waits with a timeout: a process-directed signal is often delivered to another thread,
    # and an untimed wait in the main thread would then never see it (``local down`` waited 30 s).
    signalled: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: signalled.append(number))
    owner = owner or reaper.new_owner("stack")
    say = Reporter(status=lambda message: print(message, flush=True))
    s3_server = EmbeddedS3().start()
    pool = server = events = None
    try:
        spec = FunctionSpec(runtime=config.runtime, flavor=config.flavor, base_image=config.base_image,
                            ca_bundle=Path(config.ca_bundle) if config.ca_bundle else None, rie=config.rie,
                            timeout=config.timeout, memory=config.memory)
        launcher = FunctionLauncher(spec, say)
        manifest, model_dir = resolve_model(Path(config.model) if config.model else None)
        s3 = aws.s3_client(s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        # Refresh 0: a model uploaded by a later invoke-local --model is live on the next request.
        pool = launcher.start(s3, config.bucket, manifest, model_dir, config.instances, warm=True, refresh_seconds=0,
                              owner=owner)
        if stopping.is_set() or signalled:  # told to stop while the instances warmed up
            return
        server, events = _invoke_server(pool, s3_server.endpoint_url, config)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state = {"pid": os.getpid(), "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
                 "s3_endpoint": s3_server.endpoint_url, "bucket": config.bucket, "config": asdict(config),
                 "runtime": pool.instances[0].sandbox.runtime, "started_at": time.time(),
                 "owner": owner, "rie_path": str(Path(launcher.rie_path).resolve()), "model": manifest.summary(),
                 "instance_pids": [i.sandbox.process.pid for i in pool.instances if getattr(i.sandbox, "process", None)]}
        partial = state_file().with_name(f"state.{os.getpid()}.part")
        partial.write_text(json.dumps(state, indent=2))
        os.replace(partial, state_file())  # readers never see half a state file
        print(f"ready: {state['endpoint']}", flush=True)
        while not signalled and not stopping.wait(0.2):
            pass
    except RcycError as exc:
        print(f"error: {exc.message}", flush=True)
        raise SystemExit(for_error(exc)) from None
    finally:
        # The instances first: requests in flight end at once (no instance is ever started again), then the
        # server stops taking requests, then S3.
        stop_started = time.monotonic()
        if events:
            events.stop()
        if pool:
            pool.stop()
        reaper.stop_owned(owner)  # anything of ours the pool no longer knew about
        print(f"stopping: instances stopped in {time.monotonic() - stop_started:.2f} s", flush=True)
        if server:
            server.shutdown()
            server.server_close()
        s3_server.stop()
        print(f"stopped in {time.monotonic() - stop_started:.2f} s", flush=True)
        try:
            if json.loads(state_file().read_text()).get("pid") == os.getpid():
                state_file().unlink()
        except (OSError, ValueError):
            pass



def _invoke_server(pool, s3_endpoint: str, config: StackConfig) -> tuple[StackHTTPServer, EventQueue]:
    """The Lambda Invoke API on a free 127.0.0.1 port, in front of the pool (not yet serving)."""
    admission = Admission(config.instances, config.max_waiting)
    events = EventQueue(pool.invoke, admission, size=config.event_queue, workers=config.instances)
    faults = FaultSwitch()
    names = tuple(dict.fromkeys([config.function_name, EMULATOR_ALIAS]))

    def status() -> dict:
        return {"pid": os.getpid(), "s3_endpoint": s3_endpoint, "bucket": config.bucket,
                "function": {"names": list(names), "version": EXECUTED_VERSION,
                             "capacity": admission.capacity, "in_flight": admission.in_use, "events": events.to_dict(), "faults": faults.to_dict()},
                "instances": [instance.to_dict() for instance in pool.instances]}

    api = Api(pool.invoke, status, names, admission, events, faults, config.read_timeout)
    server = StackHTTPServer(("127.0.0.1", 0), invoke_api.make_handler(api, STATUS_PATH))
    return server, events


if __name__ == "__main__":
    serve(StackConfig(**json.loads(sys.argv[1])), sys.argv[2] if len(sys.argv) > 2 else None)
