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
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core import events
from rcyc_core.config import Config
from rcyc_core.errors import EventError, InputError

from ..cloud import store
from ..defaults import (DEFAULT_BATCH_SIZE, DEFAULT_BUCKET, DEFAULT_CONCURRENCY, DEFAULT_KEEP_WARM, DEFAULT_STACK_INSTANCES,
                        LAMBDA_MAX_PAYLOAD)
from ..files import IMAGE_SUFFIXES, expand_images, read_regular
from ..function_spec import FunctionSpec
from ..invocation import Invocation
from ..model_source import resolve_model
from ..reporting import SILENT, Reporter
from .session import RUNS_PREFIX, Upload
from .stack import warm
from .stack.client import StackConfig



@dataclass
class Options:
    images: list[Path]
    event_file: Path | None = None
    model: Path | None = None
    bucket: str = DEFAULT_BUCKET
    endpoint_url: str | None = None
    function: FunctionSpec = field(default_factory=FunctionSpec)
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int = DEFAULT_BATCH_SIZE
    use_stack: bool = True  # reuse a warm `rcyc local up` stack when one runs
    keep_warm: bool = DEFAULT_KEEP_WARM  # with none running, start one this run and later ones use (it stops when idle)

    def wanted_stack(self) -> StackConfig:
        """The warm stack this run can use, or leaves behind: this function, bucket and model."""
        return StackConfig(function=self.function, instances=max(DEFAULT_STACK_INSTANCES, min(self.concurrency, 8)),
                           model=str(self.model.resolve()) if self.model else None, bucket=self.bucket)


def load_event(path: Path) -> dict:
    """The event file, refused before anything starts if Lambda would refuse it: more than the 6 MB a
    synchronous invoke carries, not UTF-8, not strict JSON (NaN, Infinity), nested too deep, or no shape the
    function reads (docs/events.md)."""
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


@dataclass(frozen=True)
class RunInfo:
    """Where a run ran: invoke-local --json's "invocation", before the emulator's figures."""

    runtime: str  # process | docker, with " (warm stack)" on the stack
    bucket: str
    s3_endpoint: str
    model: dict  # the model that answered (name, version, sha256) and its layout when it is the one asked for
    prefix: str | None = None  # the run's own prefix on a shared bucket

    def to_json(self) -> dict:
        return {name: value for name, value in vars(self).items() if value is not None or name != "prefix"}

    @classmethod
    def from_json(cls, data: dict) -> RunInfo:
        return cls(data["runtime"], data["bucket"], data["s3_endpoint"], data["model"], data.get("prefix"))


@dataclass
class LocalRun:
    response: dict
    info: RunInfo
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
    """Classify the images (or post the event) on the warm stack, or on a S3 and instances started for this
    run alone and stopped on exit (also on error, Ctrl-C, SIGTERM and SIGHUP)."""
    event = load_event(options.event_file) if options.event_file else None
    images = expand_images(options.images)
    if not images and event is None:
        raise InputError(f"no image files in {', '.join(map(str, options.images))}",
                         hint=f"Give image files ({', '.join(sorted(IMAGE_SUFFIXES))}), a directory holding some, or --event.")
    store.image_keys(images)  # two files of one name would be one object: refused before anything starts
    limit = Config().max_bytes
    uploads = [Upload(path.name, read_regular(path, limit, what="image"),
                      mimetypes.guess_type(path.name)[0] or "application/octet-stream") for path in images]
    manifest, model_dir = resolve_model(options.model, report.status)
    running = None
    if options.use_stack and options.endpoint_url is None:  # a bucket of the caller's own is never the stack's
        running = warm.find_or_start(options.wanted_stack(), manifest, options.keep_warm, report)
    if running is not None:
        report.status(f"using the warm local stack ({running.state['runtime']}, {running.state['config']['instances']} instances)")
        answer = warm.run_on_stack(running, uploads, event, options.concurrency, options.batch_size)
        info = RunInfo(f"{running.state['runtime']} (warm stack)", running.state["bucket"], running.state["s3_endpoint"],
                       _answered_by(answer["response"], manifest), answer["prefix"])
        return LocalRun(answer["response"], info, answer["invocations"], answer["seconds"])
    return _run_here(options.function, options.bucket, options.endpoint_url, uploads, event, manifest, model_dir, report,
                     concurrency=options.concurrency, batch_size=options.batch_size)


def _run_here(spec: FunctionSpec, bucket: str, endpoint_url: str | None, uploads: list[Upload], event: dict | None,
              manifest, model_dir: Path, report: Reporter, *, concurrency: int, batch_size: int) -> LocalRun:
    """The one-shot run: the embedded S3 (or ``endpoint_url``'s) and instances of its own."""
    import uuid

    from ..cloud import aws
    from ..defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY
    from .emulator.launcher import FunctionLauncher, seed_bucket
    from .emulator.s3 import EmbeddedS3
    from .session import invoke_images, put_images, remove_prefix

    launcher = FunctionLauncher(spec, report)  # a missing emulator or engine fails before anything starts
    shared = endpoint_url is not None
    prefix = f"{RUNS_PREFIX}{uuid.uuid4().hex[:12]}/" if shared else ""
    with contextlib.ExitStack() as stack:
        endpoint = endpoint_url
        if endpoint is None:
            report.status("starting the embedded S3 (moto) on 127.0.0.1")
            s3_server = EmbeddedS3().start()
            stack.callback(s3_server.stop)
            endpoint = s3_server.endpoint_url
        s3 = aws.s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        if shared:
            stack.callback(remove_prefix, s3, bucket, prefix)  # registered first, so it runs after the instances stop
        # Our own instances read a pointer of their own on a shared bucket: another run's model never answers here.
        pointer = f"{prefix}current.json" if shared else POINTER_KEY
        seed_bucket(s3, bucket, manifest, model_dir, pointer)
        keys = put_images(s3, bucket, prefix, uploads)  # before any instance starts: they idle as briefly as possible
        size = 1 if event is not None else max(1, min(concurrency, len(keys)))
        pool = launcher.start(s3, bucket, manifest, model_dir, size, pointer_key=pointer)
        stack.callback(pool.stop)
        outcome = invoke_images(lambda e: pool.invoke(e)[0], bucket, keys, prefix, event, concurrency, batch_size, report)
        info = RunInfo(launcher.runtime, bucket, endpoint, _answered_by(outcome.response, manifest), prefix or None)
        return LocalRun(outcome.response, info, outcome.invocations, outcome.seconds)


def _answered_by(response, manifest) -> dict:
    """The model that actually answered (the response says), with the layout when it is the one asked for."""
    answered = response.get("model") if isinstance(response, dict) else None
    same = (answered or {}).get("sha256") in (None, manifest.sha256)
    return {**(answered or manifest.summary()), "layout": manifest.layout if same else None}
