"""``rcyc invoke-local``: the whole local round trip, from files on disk to the function's answer.

S3 (embedded moto server, or --endpoint-url) <- model + images; the emulator runs the function; one S3
event with one record per image is posted to it. Everything started here is stopped on exit, on error
and on Ctrl-C (ExitStack unwinds in all three cases).
"""

from __future__ import annotations

import contextlib
import glob
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core import events
from rcyc_core.errors import EventError, InputError

from ..cloud import aws, store
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_BUCKET, LOCAL_CREDENTIALS, LOCAL_REGION
from ..invocation import Invocation
from ..model_source import resolve_model
from ..reporting import SILENT, Reporter
from . import stack as stack_module
from .pool import run_keys
from .runtime import FunctionLauncher, FunctionSpec, seed_bucket
from .s3_server import EmbeddedS3


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


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def expand_images(arguments: list[Path]) -> list[Path]:
    """Files as given; directories and glob patterns expand to the image files in them (sorted)."""
    found: list[Path] = []
    for argument in arguments:
        text = str(argument)
        if argument.is_dir():
            found += sorted(p for p in argument.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"no files match {text}", hint="Check the pattern (quote it so the shell does not expand it).")
            found += matches
        elif argument.is_file():
            found.append(argument)
        else:
            raise InputError(f"{argument} does not exist or is not a file", hint="Check the path.")
    return found


def load_event(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read the event {path}: {exc.strerror}", hint="Give a JSON file with --event.") from None
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise EventError(f"the event {path} is not JSON: {exc}") from None
    events.parse(event)  # refuse a malformed event before starting anything
    return event


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
                "duration_ms_p50": durations[len(durations) // 2] if durations else None}


def run(options: Options, report: Reporter = SILENT) -> LocalRun:
    """Upload the model and images, invoke, and stop everything started here (also on error and Ctrl-C)."""
    event = load_event(options.event_file) if options.event_file else None
    images = expand_images(options.images)
    if not images and event is None:
        raise InputError(f"no image files in {', '.join(map(str, options.images))}",
                         hint=f"Give image files ({', '.join(sorted(IMAGE_SUFFIXES))}), a directory holding some, or --event.")
    pairs = store.image_keys(images)
    manifest, model_dir = resolve_model(options.model, report.status)
    warm = stack_module.find() if options.use_stack and options.endpoint_url is None else None
    if warm is not None and (conflict := stack_conflict(options, warm.state["config"])):
        report.status(f"not using the warm local stack: it runs with {conflict}")
        warm = None
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
        if warm is None:
            size = 1 if event is not None else max(1, min(options.concurrency, len(pairs)))
            pool = launcher.start(s3, bucket, manifest, model_dir, size)
            stack.callback(pool.stop)
            invoke = lambda e: pool.invoke(e)[0]  # noqa: E731
            runtime = launcher.runtime
        else:
            seed_bucket(s3, bucket, manifest, model_dir)
        store.put_images(s3, bucket, pairs)
        keys = [key for _, key in pairs]

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
        info = {"runtime": runtime, "bucket": bucket, "s3_endpoint": endpoint,
                "model": {"name": manifest.name, "version": manifest.version, "layout": manifest.layout}}
        return LocalRun(response, info, invocations, seconds)


def stack_conflict(options: Options, config: dict) -> str | None:
    """The first setting of the running stack that differs from what this invocation asks for, if any."""
    spec = options.function
    wanted = {"bucket": options.bucket, "timeout": spec.timeout, "memory": spec.memory, "flavor": spec.flavor}
    if spec.runtime != "auto":
        wanted["runtime"] = spec.runtime
    for name, value in wanted.items():
        if config.get(name) != value:
            return f"{name} {config.get(name)} (this call asks for {value}; rcyc local down, or --no-stack)"
    return None
