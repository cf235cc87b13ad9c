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
from rcyc_core.errors import EventError, InputError, PrerequisiteError
from rcyc_core.function import DEFAULT_POINTER_KEY

from . import rie as rie_finder
from . import s3 as s3ops
from .local import LOCAL_CREDENTIALS, LOCAL_REGION, ContainerSandbox, EmbeddedS3, Invocation, ProcessSandbox, Sandbox
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
    runtime: str = "auto"  # auto | docker | process
    flavor: str = "slim"
    base_image: str | None = None
    ca_bundle: Path | None = None


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


def run(options: Options, status: Callable[[str], None] = lambda message: None,
        build_progress=lambda: contextlib.nullcontext(lambda step, total, text: None)) -> tuple[Invocation, dict]:
    """Run one local invocation. Returns the invocation and a description of what was set up."""
    rie_path = rie_finder.locate(options.rie)  # a missing prerequisite fails before anything starts
    event = load_event(options.event_file) if options.event_file else None
    for image in options.images:
        if not image.is_file():
            raise InputError(f"{image} does not exist or is not a file", hint="Check the path.")
    pairs = s3ops.image_keys(options.images)
    manifest, model_dir = resolve_model(options.model, status)
    docker_client = choose_runtime(options.runtime, status)

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

        env = {"AWS_ENDPOINT_URL_S3": endpoint, "RCYC_MODEL_BUCKET": options.bucket, "RCYC_MODEL_POINTER": DEFAULT_POINTER_KEY}
        sandbox = make_sandbox(options, docker_client, rie_path, env, status, build_progress)
        stack.callback(sandbox.stop)
        status(f"starting the Lambda emulator ({sandbox.runtime})")
        sandbox.start()
        status(f"invoking the function with {len(event.get('Records', []))} record(s)")
        invocation = sandbox.invoke(event)
        info = {"runtime": sandbox.runtime, "bucket": options.bucket, "s3_endpoint": endpoint, "emulator": str(rie_path),
                "model": {"name": manifest.name, "version": manifest.version, "layout": manifest.layout}}
        return invocation, info


def choose_runtime(runtime: str, status: Callable[[str], None]):
    """The docker client for the docker runtime, or None for the process runtime (auto: docker when an
    engine answers). Says which it chose."""
    from . import docker_ops

    if runtime == "process":
        return None
    try:
        client = docker_ops.engine()
    except PrerequisiteError:
        if runtime == "docker":
            raise
        status("runtime: process (no Docker engine answers)")
        return None
    if runtime == "auto":
        status("runtime: docker (a Docker engine answers; --runtime process to skip it)")
    return client


def make_sandbox(options: Options, client, rie_path: Path, env: dict[str, str], status: Callable[[str], None],
                 build_progress=lambda: contextlib.nullcontext(lambda step, total, text: None)) -> Sandbox:
    if client is None:
        return ProcessSandbox(rie_path, env=env, timeout=options.timeout, memory=options.memory)
    from . import docker_ops

    tag = f"{docker_ops.DEFAULT_REPOSITORY}:local-{options.flavor}"
    status(f"building {tag}")
    with build_progress() as on_step:
        result = docker_ops.build(client, tag, options.flavor, options.base_image or docker_ops.DEFAULT_BASE_IMAGE,
                                  ca_bundle=options.ca_bundle, on_step=on_step)
    status(f"image {result.image_id[7:19]} ({'cache hit' if result.cache_hit else f'built in {result.seconds:.1f} s'})")
    return ContainerSandbox(client, result.image_id, rie_path, env, timeout=options.timeout, memory=options.memory)
