"""The warm local stack's process (``python -m rcyc_cli.local.stack.server CONFIG``): the embedded S3, a
pool of function instances, and the Lambda Invoke API (``invoke_api``) routing each invoke to an idle
instance. Runs until SIGTERM; stops everything it started."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from rcyc_core.errors import RcycError

from ...defaults import POINTER_KEY, STACK_REFRESH_SECONDS
from ...exit_status import for_error
from ...model_source import resolve_model
from ...reporting import Reporter
from ..emulator import reaper
from ..emulator.launcher import FunctionLauncher
from ..emulator.pool import Pool
from ..emulator.s3 import EmbeddedS3
from ..session import RUNS_PREFIX, Upload, image_key, invoke_images
from .admission import Admission, EventQueue, FaultSwitch, RunAdmission
from .client import StackConfig, StackState, claim, own_file, state_file
from .errors import invalid_content
from .invoke_api import Api, StackHTTPServer
from .protocol import EMULATOR_ALIAS, EXECUTED_VERSION, RUN_PAYLOAD_LIMIT, RUNS_AT_ONCE


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
    pool = server = events = s3_server = None
    try:
        identity = claim(owner)  # noqa: F841 - held (open) for this process's life: the stack's identity
        launcher = FunctionLauncher(config.function, say)
        # The state records the runtime that runs, never "auto": later calls compare against what is.
        config = replace(config, function=config.function.with_runtime(launcher.runtime))
        manifest, model_dir = resolve_model(Path(config.model) if config.model else None)
        s3_server, pool = _start_together(launcher, config, manifest, model_dir, owner, say)
        if stopping.is_set() or signalled:  # told to stop while the instances warmed up
            return
        server, events = _invoke_server(pool, s3_server.endpoint_url, config,
                                        run=lambda payload: warm_run(payload, s3_server, config.bucket, pool),
                                        store=lambda payload: store_results(payload, s3_server), s3=s3_server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        if config.idle_seconds:
            threading.Thread(target=_stop_when_idle, args=(server.api, config.idle_seconds, stopping), daemon=True).start()
        state = StackState(pid=os.getpid(), endpoint=f"http://127.0.0.1:{server.server_address[1]}",
                           s3_endpoint=s3_server.endpoint_url, bucket=config.bucket, config=config,
                           runtime=pool.instances[0].sandbox.runtime, started_at=time.time(), owner=owner,
                           rie_path=str(Path(launcher.rie_path).resolve()), model=manifest.summary(),
                           instance_pids=[i.sandbox.process.pid for i in pool.instances if getattr(i.sandbox, "process", None)])
        partial = own_file(state_file().with_name(f"state.{os.getpid()}.part"))
        try:
            partial.write_text(json.dumps(state.to_json(), indent=2))
            os.replace(partial, own_file(state_file()))  # readers never see half a state file
        finally:
            partial.unlink(missing_ok=True)
        print(f"ready: {state.endpoint}", flush=True)
        while not signalled and not stopping.wait(0.2):
            pass
    except RcycError as exc:
        for line in (getattr(exc, "logs", None) or [])[-20:]:  # what the emulator said: the starting client shows it
            print(f"log: {line}", flush=True)
        print(f"error: {exc.message}", flush=True)  # the starting client shows these lines and this status
        if exc.hint:
            print(f"hint: {exc.hint}", flush=True)
        raise SystemExit(for_error(exc)) from None
    except OSError as exc:  # a full disk, an unwritable cache: the cause, not "stopped in 0.04 s"
        print(f"error: {exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}", flush=True)
        raise SystemExit(4) from None
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
        if s3_server:
            s3_server.stop()
        print(f"stopped in {time.monotonic() - stop_started:.2f} s", flush=True)
        try:
            if json.loads(state_file().read_text()).get("pid") == os.getpid():
                state_file().unlink()
        except (OSError, ValueError):
            pass



def _start_together(launcher: FunctionLauncher, config: StackConfig, manifest, model_dir: Path, owner: str,
                    say: Reporter) -> tuple[EmbeddedS3, Pool]:
    """The embedded S3 and the instances, started at once rather than one after the other (moto's import and
    an instance's start each take a few hundred ms). S3's socket is bound and listening first, so the
    instances get its address at once; their first reads (the warm-up loads the model) wait in the socket's
    queue until S3 serves, which it does only once the model is in its store. Whatever fails, both sides are
    stopped and the first failure (S3's, else the instances') is raised."""
    from ...cloud.buckets import validate_bucket_name

    validate_bucket_name(config.bucket)  # a bad name fails now, not after the instances waited on S3 for it
    listener = socket.create_server(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    started: dict = {}

    def start_s3() -> None:
        try:
            started["s3"] = EmbeddedS3(listener)
            say.status(f"preparing bucket {config.bucket}")
            started["s3"].seed_model(config.bucket, manifest, model_dir, POINTER_KEY)
            started["s3"].start()
        except BaseException as exc:  # raised in the main thread, below
            started["error"] = exc

    thread = threading.Thread(target=start_s3, name="embedded-s3-start", daemon=True)
    thread.start()
    pool = None
    try:
        # No run moves the stack's pointer (a run asking for another model gets instances of its own), so a
        # pointer check per second is plenty: one GET a second at most, not one per request.
        pool = launcher.start(endpoint, config.bucket, config.instances, warm=True,
                              refresh_seconds=STACK_REFRESH_SECONDS, owner=owner)
    finally:
        thread.join()
        if pool is None or "error" in started:
            if pool is not None:
                pool.stop()
            if "s3" in started:
                started["s3"].stop()
        # S3 serves on a copy of its own. Closed only now, after the instances stopped if S3 failed: the port
        # stays ours while any instance could still send a request to it.
        listener.close()
    if "error" in started:
        raise started["error"]
    return started["s3"], pool


def _stop_when_idle(api: Api, idle_seconds: float, stopping: threading.Event) -> None:
    """A stack invoke-local left behind stops by itself once nobody has called it for ``idle_seconds``."""
    while not stopping.wait(min(idle_seconds, 5.0)):
        # idle means no request for that long and none in the stack now: a warm run in flight is not idle
        if time.monotonic() - api.last_request > idle_seconds and api.admission.in_use == 0 and api.runs.in_use == 0:
            print(f"idle for {idle_seconds:g} s: stopping", flush=True)
            stopping.set()


def warm_run(payload: object, s3_server: EmbeddedS3, bucket: str, pool) -> dict:
    """A whole invoke-local run on this stack (``RUNS_PATH``): the images arrive as bytes, go to this stack's
    S3 under a prefix of the run's own, are invoked over the pool, and are removed again."""
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise invalid_content('a run is {"images": [{"name", "data" (base64), "content_type"}], "event", "concurrency", "batch_size"}')
    try:
        uploads = [Upload(_safe_name(item["name"]), base64.b64decode(item["data"], validate=True), str(item.get("content_type") or ""))
                   for item in payload["images"]]
        concurrency = min(max(_whole(payload.get("concurrency"), 1), 1), len(pool.instances))
        batch_size = min(max(_whole(payload.get("batch_size"), 16), 1), 1000)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise invalid_content(f"a malformed run: {type(exc).__name__}: {str(exc)[:120]}") from None
    event = payload.get("event")
    if event is not None and not (isinstance(event, dict) and isinstance(event.get("Records", []), list)):
        raise invalid_content('the run\'s event must be a JSON object, its "Records" a list')
    if not uploads and event is None:
        raise invalid_content("a run needs images, or an event")
    prefix = f"{RUNS_PREFIX}{uuid.uuid4().hex[:12]}/"
    keys = [image_key(prefix, upload) for upload in uploads]
    try:
        s3_server.put_objects(bucket, [(key, upload.body) for key, upload in zip(keys, uploads)])
        outcome = invoke_images(lambda e: pool.invoke(e)[0], bucket, keys, prefix, event, concurrency, batch_size)
    except RcycError as exc:
        return {"error": {"kind": exc.kind, "message": exc.message, "hint": exc.hint, "logs": getattr(exc, "logs", [])}}
    finally:
        s3_server.delete_prefix(bucket, prefix)
    return {"response": outcome.response, "seconds": outcome.seconds, "prefix": prefix,
            "invocations": [{"response": None, "report": i.report.to_dict_raw(), "wall_ms": i.wall_ms, "logs": i.logs[-50:]}
                            for i in outcome.invocations]}


def _whole(value: object, default: int) -> int:
    """A count from a client: a JSON integer (1e309, true or "3" are a client's mistake: 400, not 500)."""
    if value is None:
        return default
    if type(value) is not int:
        raise ValueError(f"{str(value)[:40]} is not a whole number")
    return value


def store_results(payload: object, s3_server: EmbeddedS3) -> dict:
    """classify --local's result objects for one event (``RESULTS_PATH``), stored in this stack's S3 directly:
    one request, not one signed PUT each through the S3 API (which cost the client and the server about as
    much CPU as the function spent classifying). They are ordinary objects to every S3 reader."""
    if not isinstance(payload, dict) or not isinstance(payload.get("bucket"), str) or not isinstance(payload.get("objects"), list):
        raise invalid_content('results are {"bucket", "objects": [{"key", "body", "metadata"}], "replaces": [key]}')
    items = [_result_item(o) for o in payload["objects"]]
    # A resume index replaces the files it merged: removed here too, or the CLI made an S3 client for its
    # deletes alone (what routing the index was for) at the end of every rerun that had an index.
    replaces = payload.get("replaces", [])
    written = {key for key, _, _ in items}
    if not isinstance(replaces, list) or not all(_index_file(key) and key not in written for key in replaces):
        # (a file named both ways would be stored, then removed: the request contradicts itself)
        raise invalid_content('"replaces" lists resume index files (keys under .../.rcyc-index/ ending in .json) '
                              'other than the ones stored')
    if not s3_server.writes_here(payload["bucket"]):  # the S3 API's to write, as moto would (its policy, its log)
        return {"through_s3": "this bucket's writes go through the S3 API (served_here)"}
    try:
        etags = s3_server.put_documents(payload["bucket"], items)
    except Exception as exc:  # moto's own errors (no such bucket): the client says what failed
        return {"error": {"kind": getattr(exc, "code", None) or type(exc).__name__, "message": str(exc)[:200]}}
    # only once the new objects are stored: until then the files replaced are the only copy of their entries
    return {"etags": etags, "replaced": s3_server.delete_documents(payload["bucket"], replaces)}


def _index_file(key: object) -> bool:
    from ...defaults import INDEX_FOLDER

    return isinstance(key, str) and key.endswith(".json") and f"/{INDEX_FOLDER}" in key and _utf8_size(key) <= 1024


def _utf8_size(text: str) -> int:
    """Bytes of ``text`` as S3 stores it; a lone surrogate (JSON's \\u escapes carry one from a command line
    that was not UTF-8) cannot be stored at all: larger than any limit, so refused as too long is."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return 1 << 62


METADATA_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
METADATA_VALUE_RE = re.compile(r"[ -~]{0,256}")  # printable ASCII: what an HTTP header carries back


def _result_item(obj: object) -> tuple[str, bytes, dict[str, str]]:
    """One result object as the S3 API would store it and serve it back: a JSON document under a ``.json``
    key, with user metadata an HTTP header can carry (a value the S3 API cannot send back would make the
    object unreadable there). Anything else is refused, never coerced."""
    if not isinstance(obj, dict) or not isinstance(obj.get("key"), str) or not isinstance(obj.get("body"), str):
        raise invalid_content('a result object is {"key": str, "body": str, "metadata": {str: str}}')
    key, body, metadata = obj["key"], obj["body"], obj.get("metadata") or {}
    if not (0 < _utf8_size(key) <= 1024 and key.endswith(".json")):
        raise invalid_content(f"a result key is 1 to 1024 bytes of UTF-8 ending in .json: {key[:60]!r}")
    try:
        if not isinstance(json.loads(body), dict):
            raise ValueError
        data = body.encode()  # a lone surrogate (a \u escape) is no UTF-8: refused here, not a 500 below
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise invalid_content(f"the result of {key[:60]!r} is not a JSON object in UTF-8") from None
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and METADATA_NAME_RE.fullmatch(k) and METADATA_VALUE_RE.fullmatch(v)
            for k, v in metadata.items()):
        raise invalid_content(f"the metadata of {key[:60]!r}: lowercase names, printable ASCII values")
    return key, data, metadata


def _safe_name(name: object) -> str:
    """A file name as a key segment: no separators, no dot-dot, printable."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise ValueError(f"not a file name: {str(name)[:60]!r}")
    return name


def _invoke_server(pool, s3_endpoint: str, config: StackConfig, run=None, store=None, s3=None) -> tuple[StackHTTPServer, EventQueue]:
    """The Lambda Invoke API on a free 127.0.0.1 port, in front of the pool (not yet serving)."""
    admission = Admission(config.instances, config.max_waiting)
    events = EventQueue(pool.invoke, admission, size=config.event_queue, workers=config.instances)
    faults = FaultSwitch()
    runs = RunAdmission(RUNS_AT_ONCE, RUN_PAYLOAD_LIMIT)
    names = tuple(dict.fromkeys([config.function_name, EMULATOR_ALIAS]))

    def status() -> dict:
        return {"pid": os.getpid(), "s3_endpoint": s3_endpoint, "bucket": config.bucket,
                "function": {"names": list(names), "version": EXECUTED_VERSION,
                             "capacity": admission.capacity, "in_flight": admission.in_use, "events": events.to_dict(), "faults": faults.to_dict()},
                "runs": runs.to_dict(),
                "instances": [instance.to_dict() for instance in pool.instances]}

    api = Api(pool.invoke, status, names, admission, events, faults, config.read_timeout, run, store, runs, s3)
    server = StackHTTPServer(("127.0.0.1", 0), api)
    return server, events


if __name__ == "__main__":
    serve(StackConfig.from_json(json.loads(sys.argv[1])), sys.argv[2] if len(sys.argv) > 2 else None)
