"""Starting the function locally: pick the runtime (a process on this machine, or the image in a
container), seed the bucket with the model, then start a pool of sandboxes against that bucket.

This is the one start-up sequence: ``invoke-local``, the warm stack, the benchmarks and the tests all go
through ``FunctionLauncher``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rcyc_core.config import function_environment
from rcyc_core.errors import PrerequisiteError
from rcyc_core.manifest import Manifest

from ...defaults import (DEFAULT_BASE_IMAGE, DEFAULT_REPOSITORY, LOCAL_REGION, POINTER_KEY)
from ...reporting import SILENT, Reporter
from ...function_spec import FunctionSpec
from . import rie as rie_finder
from .pool import Pool
from .sandbox import ProcessSandbox, Sandbox


def choose_runtime(runtime: str, report: Reporter = SILENT, base_image: str | None = None):
    """The docker client for the docker runtime, or None for the process runtime. auto: docker when an
    engine answers and already has the base image (so auto never starts a long pull); says which it chose."""
    from ... import image

    if runtime == "process":
        return None
    try:
        client = image.engine()
    except PrerequisiteError:
        if runtime == "docker":
            raise
        report.status("runtime: process (no Docker engine answers)")
        return None
    if runtime == "auto":
        base = base_image or DEFAULT_BASE_IMAGE
        if not image.has_image(client, base):
            report.status(f"runtime: process (the engine does not have {base}; --runtime docker pulls it)")
            return None
        report.status("runtime: docker (a Docker engine answers; --runtime process to skip it)")
    return client


def seed_bucket(s3, bucket: str, manifest: Manifest, model_dir: Path, pointer_key: str = POINTER_KEY) -> None:
    """A private bucket holding the model, named by the pointer (an unchanged model is not re-uploaded)."""
    from ...cloud import buckets, store

    buckets.ensure_private_bucket(s3, bucket, LOCAL_REGION)
    if (store.read_pointer(s3, bucket, pointer_key) or {}).get("sha256") != manifest.sha256:
        store.put_model(s3, bucket, manifest, model_dir, pointer_key=pointer_key)


class FunctionLauncher:
    """Checks the prerequisites when made (a missing emulator or engine fails before anything starts);
    ``start`` seeds the bucket and starts the sandboxes."""

    def __init__(self, spec: FunctionSpec, report: Reporter = SILENT):
        from . import reaper

        self.spec, self.report = spec, report
        reaper.sweep_orphans()  # sandboxes an rcyc process killed with -9 left behind
        self.rie_path = rie_finder.locate(spec.rie)
        self.docker = choose_runtime(spec.runtime, report, spec.base_image)
        if self.docker is not None:
            reaper.sweep_orphan_containers(self.docker)  # containers an rcyc process killed with -9 left behind
        self._image_id: str | None = None

    def start(self, s3, bucket: str, manifest: Manifest, model_dir: Path, instances: int = 1, warm: bool = False,
              refresh_seconds: float | None = None, pointer_key: str = POINTER_KEY, owner: str | None = None,
              results_prefix: str | None = None) -> Pool:
        """Seed ``bucket`` (through the client ``s3``) with the model, then start ``instances`` sandboxes
        reading it (through ``pointer_key``). Every sandbox carries ``owner`` (a new token by default) so
        that whatever is left of it can be found and stopped (``reaper``). The caller stops the pool."""
        from . import reaper

        self.report.status(f"preparing bucket {bucket}")
        seed_bucket(s3, bucket, manifest, model_dir, pointer_key)
        self.owner = owner or reaper.new_owner("run")
        env = {**function_environment(bucket, refresh_seconds, results_prefix, pointer_key=pointer_key),
               "AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url, reaper.OWNER_VARIABLE: self.owner}
        factory = self.sandbox_factory(env)
        self.report.status(f"starting {instances} Lambda emulator instance(s)")
        pool = Pool(factory, instances)
        try:
            return pool.start(warm=warm)
        except BaseException:
            pool.stop()
            raise

    def sandbox_factory(self, env: dict[str, str]) -> Callable[[int], Sandbox]:
        """A maker of function instances for the chosen runtime (for docker, the image is built once here)."""
        spec = self.spec
        if self.docker is None:
            return lambda index: ProcessSandbox(self.rie_path, env=env, timeout=spec.timeout, memory=spec.memory,
                                                name=f"rcyc-local-{index}")
        from .container import ContainerSandbox

        image_id = self._image_id or self._build()
        return lambda index: ContainerSandbox(self.docker, image_id, self.rie_path, env, timeout=spec.timeout,
                                              memory=spec.memory, name=f"rcyc-local-{index}")

    def _build(self) -> str:
        from ... import image

        tag = f"{DEFAULT_REPOSITORY}:local-{self.spec.flavor}"
        self.report.status(f"building {tag}")
        result = image.build(self.docker, tag, self.spec.flavor, self.spec.base_image or DEFAULT_BASE_IMAGE,
                             ca_bundle=self.spec.ca_bundle, on_step=self.report.build_step)
        self.report.status(f"image {result.image_id[7:19]} "
                           f"({'cache hit' if result.cache_hit else f'built in {result.seconds:.1f} s'})")
        self._image_id = result.image_id
        return result.image_id

    @property
    def runtime(self) -> str:
        return "process" if self.docker is None else "docker"
