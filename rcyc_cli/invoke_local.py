"""``rcyc invoke-local``: the whole local round trip, from files on disk to the function's answer.

S3 (embedded moto server, or --endpoint-url) <- model + images; the emulator runs the function; one S3
event with one record per image is posted to it. Everything started here is stopped on exit, on error
and on Ctrl-C (ExitStack unwinds in all three cases).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rcyc_core import events
from rcyc_core.errors import EventError, InputError
from rcyc_core.function import DEFAULT_POINTER_KEY

from . import rie as rie_finder
from . import s3 as s3ops
from .local import LOCAL_CREDENTIALS, LOCAL_REGION, EmbeddedS3, Invocation, ProcessSandbox
from .models import resolve_model

DEFAULT_BUCKET = "recycle-able-image"


@dataclass
class Options:
    images: list[Path]
    event_file: Path | None = None
    model: Path | None = None
    bucket: str = DEFAULT_BUCKET
    endpoint_url: str | None = None
    rie: str | None = None
    timeout: int = 180
    memory: int = 1024


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


def run(options: Options, status: Callable[[str], None] = lambda message: None) -> tuple[Invocation, dict]:
    """Run one local invocation. Returns the invocation and a description of what was set up."""
    rie_path = rie_finder.locate(options.rie)  # a missing prerequisite fails before anything starts
    event = load_event(options.event_file) if options.event_file else None
    for image in options.images:
        if not image.is_file():
            raise InputError(f"{image} does not exist or is not a file", hint="Check the path.")
    pairs = s3ops.image_keys(options.images)
    manifest, model_dir = resolve_model(options.model, status)

    with contextlib.ExitStack() as stack:
        endpoint = options.endpoint_url
        if endpoint is None:
            status("starting the embedded S3 (moto) on 127.0.0.1")
            s3_server = EmbeddedS3().start()
            stack.callback(s3_server.stop)
            endpoint = s3_server.endpoint_url
        s3 = s3ops.client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        status(f"preparing bucket {options.bucket}")
        s3ops.ensure_private_bucket(s3, options.bucket, LOCAL_REGION)
        s3ops.upload_model(s3, options.bucket, manifest, model_dir)
        s3ops.upload_images(s3, options.bucket, pairs)
        if event is None:
            event = events.make_event(options.bucket, [key for _, key in pairs])

        status("starting the Lambda emulator")
        sandbox = ProcessSandbox(
            rie_path,
            env={
                "AWS_ENDPOINT_URL_S3": endpoint,
                "RCYC_MODEL_BUCKET": options.bucket,
                "RCYC_MODEL_POINTER": DEFAULT_POINTER_KEY,
            },
            timeout=options.timeout,
            memory=options.memory,
        )
        stack.callback(sandbox.stop)
        sandbox.start()
        status(f"invoking the function with {len(event.get('Records', []))} record(s)")
        invocation = sandbox.invoke(event)
        info = {"runtime": sandbox.runtime, "bucket": options.bucket, "s3_endpoint": endpoint, "emulator": str(rie_path),
                "model": {"name": manifest.name, "version": manifest.version, "layout": manifest.layout}}
        return invocation, info
