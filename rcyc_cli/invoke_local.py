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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rcyc_core import events
from rcyc_core.errors import EventError, InputError, PrerequisiteError
from rcyc_core.function import function_environment

from . import rie as rie_finder
from . import s3 as s3ops
from . import stack as stack_module
from .local import LOCAL_CREDENTIALS, LOCAL_REGION, ContainerSandbox, EmbeddedS3, Invocation, ProcessSandbox, Sandbox
from .models import resolve_model
from .options import DEFAULT_BUCKET
from .pool import Pool, run_keys



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
    concurrency: int = 1
    batch_size: int = 16
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


def run(options: Options, status: Callable[[str], None] = lambda message: None,
        build_progress=lambda: contextlib.nullcontext(lambda step, total, text: None),
        on_done: Callable[[int], None] = lambda n: None) -> LocalRun:
    """Upload the model and images, invoke, and stop everything started here (also on error and Ctrl-C)."""
    event = load_event(options.event_file) if options.event_file else None
    images = expand_images(options.images)
    if not images and event is None:
        raise InputError(f"no image files in {', '.join(map(str, options.images))}",
                         hint=f"Give image files ({', '.join(sorted(IMAGE_SUFFIXES))}), a directory holding some, or --event.")
    pairs = s3ops.image_keys(images)
    manifest, model_dir = resolve_model(options.model, status)
    warm = stack_module.find() if options.use_stack and options.endpoint_url is None else None
    if warm is not None and (conflict := stack_conflict(options, warm.state["config"])):
        status(f"not using the warm local stack: it runs with {conflict}")
        warm = None
    if warm is None:
        rie_path = rie_finder.locate(options.rie)  # a missing prerequisite fails before anything starts
        docker_client = choose_runtime(options.runtime, status, options.base_image)

    with contextlib.ExitStack() as stack:
        if warm is not None:
            status(f"using the warm local stack ({warm.state['runtime']}, {warm.state['config']['instances']} instances)")
            endpoint, bucket, invoke = warm.state["s3_endpoint"], warm.state["bucket"], warm.invoke
            runtime = f"{warm.state['runtime']} (warm stack)"
        else:
            endpoint, bucket = options.endpoint_url, options.bucket
            if endpoint is None:
                status("starting the embedded S3 (moto) on 127.0.0.1")
                s3_server = EmbeddedS3().start()
                stack.callback(s3_server.stop)
                endpoint = s3_server.endpoint_url
        s3 = s3ops.client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        status(f"preparing bucket {bucket}")
        s3ops.ensure_private_bucket(s3, bucket, LOCAL_REGION)
        if (s3ops.read_pointer(s3, bucket) or {}).get("sha256") != manifest.sha256:  # an unchanged model is not re-uploaded
            s3ops.upload_model(s3, bucket, manifest, model_dir)
        s3ops.upload_images(s3, bucket, pairs)
        keys = [key for _, key in pairs]

        if warm is None:
            env = {**function_environment(bucket), "AWS_ENDPOINT_URL_S3": endpoint}
            factory = sandbox_factory(options, docker_client, rie_path, env, status, build_progress)
            size = 1 if event is not None else max(1, min(options.concurrency, len(keys)))
            status(f"starting {size} Lambda emulator instance(s)")
            pool = Pool(factory, size)
            stack.callback(pool.stop)
            pool.start(warm=False)
            invoke = lambda e: pool.invoke(e)[0]  # noqa: E731
            runtime = pool.instances[0].sandbox.runtime

        started = time.perf_counter()
        if event is not None:
            status(f"invoking the function with {len(event.get('Records', []))} record(s)")
            invocations = [invoke(event)]
            response = invocations[0].response
        else:
            # One event for all images, unless spreading them over several instances (keys is never empty here).
            batch = len(keys) if options.concurrency <= 1 else min(options.batch_size, -(-len(keys) // options.concurrency))
            status(f"invoking the function: {len(keys)} image(s), {-(-len(keys) // batch)} event(s), "
                   f"concurrency {options.concurrency}")
            batch_run = run_keys(invoke, bucket, keys, batch_size=batch, concurrency=options.concurrency, on_done=on_done)
            invocations, response = batch_run.invocations, batch_run.response
        seconds = time.perf_counter() - started
        info = {"runtime": runtime, "bucket": bucket, "s3_endpoint": endpoint,
                "model": {"name": manifest.name, "version": manifest.version, "layout": manifest.layout}}
        return LocalRun(response, info, invocations, seconds)


def stack_conflict(options: Options, config: dict) -> str | None:
    """The first setting of the running stack that differs from what this invocation asks for, if any."""
    wanted = {"bucket": options.bucket, "timeout": options.timeout, "memory": options.memory, "flavor": options.flavor}
    if options.runtime != "auto":
        wanted["runtime"] = options.runtime
    for name, value in wanted.items():
        if config.get(name) != value:
            return f"{name} {config.get(name)} (this call asks for {value}; rcyc local down, or --no-stack)"
    return None


def choose_runtime(runtime: str, status: Callable[[str], None], base_image: str | None = None):
    """The docker client for the docker runtime, or None for the process runtime. auto: docker when an
    engine answers and already has the base image (so auto never starts a long pull); says which it chose."""
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
        base = base_image or docker_ops.DEFAULT_BASE_IMAGE
        if not docker_ops.has_image(client, base):
            status(f"runtime: process (the engine does not have {base}; --runtime docker pulls it)")
            return None
        status("runtime: docker (a Docker engine answers; --runtime process to skip it)")
    return client


def sandbox_factory(options: Options, client, rie_path: Path, env: dict[str, str], status: Callable[[str], None],
                    build_progress=lambda: contextlib.nullcontext(lambda step, total, text: None)) -> Callable[[int], Sandbox]:
    """A maker of function instances for the chosen runtime (for docker, the image is built once here)."""
    if client is None:
        return lambda index: ProcessSandbox(rie_path, env=env, timeout=options.timeout, memory=options.memory,
                                            name=f"rcyc-local-{index}")
    from . import docker_ops

    tag = f"{docker_ops.DEFAULT_REPOSITORY}:local-{options.flavor}"
    status(f"building {tag}")
    with build_progress() as on_step:
        result = docker_ops.build(client, tag, options.flavor, options.base_image or docker_ops.DEFAULT_BASE_IMAGE,
                                  ca_bundle=options.ca_bundle, on_step=on_step)
    status(f"image {result.image_id[7:19]} ({'cache hit' if result.cache_hit else f'built in {result.seconds:.1f} s'})")
    return lambda index: ContainerSandbox(client, result.image_id, rie_path, env, timeout=options.timeout,
                                          memory=options.memory, name=f"rcyc-local-{index}")
