"""``rcyc invoke-local``: the whole local round trip, from files on disk to the function's answer.

S3 (embedded moto server, or --endpoint-url) <- model + images; the emulator runs the function; one S3
event with one record per image is posted to it. Everything started here is stopped on exit, on error,
on Ctrl-C and on SIGTERM/SIGHUP (ExitStack unwinds in every case).

A bucket another run can see (the warm stack's, or one at --endpoint-url) is shared: this run's images go
under a prefix of its own (``runs/<run id>/images/``) and are removed afterwards, and on the warm stack
the model pointer is never moved (the stack keeps the model it was started with; a run asking for another
model gets instances of its own).
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core import events
from rcyc_core.config import Config
from rcyc_core.errors import EventError, InputError, PrerequisiteError

from ..cloud import aws, store
from ..defaults import (DEFAULT_BASE_IMAGE, DEFAULT_BATCH_SIZE, DEFAULT_BUCKET, IMAGES_PREFIX, LAMBDA_MAX_PAYLOAD,
                        LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY)
from ..files import IMAGE_SUFFIXES, expand_images, read_regular
from ..invocation import Invocation
from ..model_source import resolve_model
from ..reporting import SILENT, Reporter
from . import stack as stack_module
from .pool import run_keys
from .runtime import FunctionLauncher, FunctionSpec, seed_bucket
from .s3_server import EmbeddedS3

RUNS_PREFIX = "runs/"


@dataclass
class Options:
    images: list[Path]
    event_file: Path | None = None
    model: Path | None = None
    bucket: str = DEFAULT_BUCKET
    endpoint_url: str | None = None
    function: FunctionSpec = field(default_factory=FunctionSpec)
    concurrency: int = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    use_stack: bool = True  # reuse a warm `rcyc local up` stack when one runs


def load_event(path: Path) -> dict:
    """The event file, refused before anything starts if Lambda would refuse it: more than the 6 MB a
    synchronous invoke carries, not UTF-8, not strict JSON (NaN, Infinity), nested too deep, no Records."""
    data = read_regular(path, LAMBDA_MAX_PAYLOAD, what="event")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError(f"the event {path} is not UTF-8 (byte {exc.start})") from None
    try:
        event = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise EventError(f"the event {path} is nested too deep") from None
    except ValueError as exc:
        raise EventError(f"the event {path} is not JSON: {exc}") from None
    events.parse(event)  # refuse a malformed event before starting anything
    return event


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON (Lambda refuses it)")


@dataclass
class LocalRun:
    response: dict
    info: dict
    invocations: list[Invocation]
    seconds: float

    def figures(self) -> dict:
        """The emulator's figures: the report of a single invocation, or a summary over many."""
        if len(self.invocations) == 1:
            only = self.invocations[0]
            return {"report": only.report.to_dict(), "wall_ms": round(only.wall_ms, 2)}
        done = len(self.response["results"]) + len(self.response["errors"])
        durations = sorted(i.report.duration_ms for i in self.invocations if i.report.duration_ms is not None)
        return {"invocations": len(self.invocations), "cold_starts": sum(i.report.cold for i in self.invocations),
                "seconds": round(self.seconds, 3), "images_per_second": round(done / self.seconds, 2) if self.seconds else None,
                "duration_ms_p50": durations[len(durations) // 2] if durations else None,
                "peak_mb": max((i.report.peak_mb for i in self.invocations if i.report.peak_mb is not None), default=None)}


def run(options: Options, report: Reporter = SILENT) -> LocalRun:
    """Upload the model and images, invoke, and stop everything started here (also on error and Ctrl-C)."""
    event = load_event(options.event_file) if options.event_file else None
    images = expand_images(options.images)
    if not images and event is None:
        raise InputError(f"no image files in {', '.join(map(str, options.images))}",
                         hint=f"Give image files ({', '.join(sorted(IMAGE_SUFFIXES))}), a directory holding some, or --event.")
    run_id = uuid.uuid4().hex[:12]
    manifest, model_dir = resolve_model(options.model, report.status)
    warm = stack_module.find() if options.use_stack and options.endpoint_url is None else None
    if warm is not None and (conflict := stack_conflict(options, warm.state, manifest)):
        report.status(f"not using the warm local stack: {conflict}")
        warm = None
    shared = warm is not None or options.endpoint_url is not None
    prefix = f"{RUNS_PREFIX}{run_id}/" if shared else ""
    pairs = store.image_keys(images, prefix=prefix + IMAGES_PREFIX)
    launcher = FunctionLauncher(options.function, report) if warm is None else None

    with contextlib.ExitStack() as stack:
        if warm is not None:
            report.status(f"using the warm local stack ({warm.state['runtime']}, {warm.state['config']['instances']} instances)")
            endpoint, bucket, invoke = warm.state["s3_endpoint"], warm.state["bucket"], warm.invoke
            runtime = f"{warm.state['runtime']} (warm stack)"
        else:
            endpoint, bucket = options.endpoint_url, options.bucket
            if endpoint is None:
                report.status("starting the embedded S3 (moto) on 127.0.0.1")
                s3_server = EmbeddedS3().start()
                stack.callback(s3_server.stop)
                endpoint = s3_server.endpoint_url
        s3 = aws.s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        if shared:
            stack.callback(remove_prefix, s3, bucket, prefix)  # registered first, so it runs after the instances stop
        if warm is None:
            # Our own instances read a pointer of their own on a shared bucket: another run's model never answers here.
            pointer = f"{prefix}current.json" if shared else POINTER_KEY
            seed_bucket(s3, bucket, manifest, model_dir, pointer)
        put_images(s3, bucket, pairs)  # before any instance starts: they idle as briefly as possible
        if warm is None:
            size = 1 if event is not None else max(1, min(options.concurrency, len(pairs)))
            pool = launcher.start(s3, bucket, manifest, model_dir, size, pointer_key=pointer)
            stack.callback(pool.stop)
            invoke = lambda e: pool.invoke(e)[0]  # noqa: E731
            runtime = launcher.runtime
        keys = [key for _, key in pairs]
        if event is not None and prefix:
            event = rebase_event(event, {f"{IMAGES_PREFIX}{path.name}": key for path, key in pairs}, report)

        started = time.perf_counter()
        if event is not None:
            report.status(f"invoking the function with {len(event.get('Records', []))} record(s)")
            invocations = [invoke(event)]
            response = invocations[0].response
        else:
            # One event for all images, unless spreading them over several instances (keys is never empty here).
            batch = len(keys) if options.concurrency <= 1 else min(options.batch_size, -(-len(keys) // options.concurrency))
            report.status(f"invoking the function: {len(keys)} image(s), {-(-len(keys) // batch)} event(s), "
                          f"concurrency {options.concurrency}")
            batch_run = run_keys(invoke, bucket, keys, batch_size=batch, concurrency=options.concurrency, on_done=report.done)
            invocations, response = batch_run.invocations, batch_run.response
        seconds = time.perf_counter() - started
        answered = response.get("model") if isinstance(response, dict) else None
        model = {**(answered or manifest.summary()), "layout": manifest.layout if (answered or {}).get("sha256") in (None, manifest.sha256) else None}
        info = {"runtime": runtime, "bucket": bucket, "s3_endpoint": endpoint, "model": model}
        if prefix:
            info["prefix"] = prefix
        return LocalRun(response, info, invocations, seconds)


def put_images(s3, bucket: str, pairs: list[tuple[Path, str]]) -> None:
    """Upload each image, read as a regular file of at most the function's object size limit."""
    limit = Config().max_bytes
    for path, key in pairs:
        body = read_regular(path, limit, what="image")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        aws.aws_call(f"upload {key}", s3.put_object, Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def remove_prefix(s3, bucket: str, prefix: str) -> None:
    """Remove this run's objects from a shared bucket (best effort: a stopped S3 has nothing to clean)."""
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    except Exception:  # noqa: BLE001 - cleanup must never mask the run's own outcome
        pass


def rebase_event(event: dict, moved: dict[str, str], report: Reporter) -> dict:
    """The event with each record naming an uploaded image (``images/<name>``) pointed at its per-run key."""
    count = 0
    records = []
    for record in event.get("Records", []):
        try:
            key = events.unquote_plus(record["s3"]["object"]["key"])
            if key in moved:
                record = {**record, "s3": {**record["s3"], "object": {**record["s3"]["object"],
                                                                      "key": events.quote_plus(moved[key], safe="/")}}}
                count += 1
        except (KeyError, TypeError):
            pass
        records.append(record)
    if count:
        report.status(f"{count} record(s) of the event point at this run's own copies of the images")
    return {**event, "Records": records}


def stack_conflict(options: Options, state: dict, manifest) -> str | None:
    """Why the running stack cannot answer this invocation as asked (the first setting that differs), or None."""
    from . import rie as rie_finder

    config, spec = state["config"], options.function
    wanted = {"bucket": options.bucket, "timeout": spec.timeout, "memory": spec.memory, "flavor": spec.flavor,
              "base image": spec.base_image or DEFAULT_BASE_IMAGE,
              "CA bundle": str(Path(spec.ca_bundle).resolve()) if spec.ca_bundle else None}
    running = {"bucket": config.get("bucket"), "timeout": config.get("timeout"), "memory": config.get("memory"),
               "flavor": config.get("flavor"), "base image": config.get("base_image") or DEFAULT_BASE_IMAGE,
               "CA bundle": config.get("ca_bundle")}
    if spec.runtime != "auto":
        wanted["runtime"], running["runtime"] = spec.runtime, state.get("runtime")
    if state.get("rie_path") is not None:
        try:
            wanted["emulator"], running["emulator"] = str(Path(rie_finder.locate(spec.rie)).resolve()), state["rie_path"]
        except PrerequisiteError:
            if spec.rie:
                raise  # an explicit emulator that is not there is an error, stack or not
            # none installed here: the stack's own emulator is the only one there is
    if options.model is not None:
        stack_model = state.get("model") or {}
        if stack_model.get("sha256") != manifest.sha256:
            return (f"it runs the model {stack_model.get('name')} {stack_model.get('version')}, this call asks for "
                    f"{manifest.name} {manifest.version} (starting instances of its own)")
    for name, value in wanted.items():
        if running.get(name) != value:
            return f"it runs with {name} {running.get(name)}, this call asks for {value} (rcyc local down, or --no-stack)"
    return None
