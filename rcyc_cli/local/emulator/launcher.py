"""Starting the function locally: pick the runtime (a process on this machine, or the image in a
container), then start a pool of sandboxes against a bucket that holds the model.

This is the one start-up sequence: ``invoke-local``, the warm stack, the benchmarks and the tests all go
through ``FunctionLauncher``.
"""

from __future__ import annotations

from typing import Callable

from rcyc_core.config import function_environment
from rcyc_core.errors import PrerequisiteError

from ...defaults import (DEFAULT_BASE_IMAGE, DEFAULT_REPOSITORY, POINTER_KEY)
from ...reporting import SILENT, Reporter, plural
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


class FunctionLauncher:
    """Checks the prerequisites when made (a missing emulator or engine fails before anything starts);
    ``start`` starts the sandboxes against a bucket the caller seeded."""

    def __init__(self, spec: FunctionSpec, report: Reporter = SILENT):
        from . import reaper

        self.spec, self.report = spec, report
        reaper.sweep_orphans()  # sandboxes an rcyc process killed with -9 left behind
        self.rie_path = rie_finder.locate(spec.rie)
        self.docker = choose_runtime(spec.runtime, report, spec.base_image)
        if self.docker is not None:
            reaper.sweep_orphan_containers(self.docker)  # containers an rcyc process killed with -9 left behind
        self._image_id: str | None = None

    def start(self, endpoint_url: str, bucket: str, instances: int = 1, warm: bool = False,
              refresh_seconds: float | None = None, pointer_key: str = POINTER_KEY, owner: str | None = None,
              results_prefix: str | None = None) -> Pool:
        """Start ``instances`` sandboxes reading the model that ``pointer_key`` names in ``bucket`` at
        ``endpoint_url`` (the caller seeded it). Every sandbox carries ``owner`` (a new token by default) so
        that whatever is left of it can be found and stopped (``reaper``). The caller stops the pool."""
        from . import reaper

        self.owner = owner or reaper.new_owner("run")
        env = {**function_environment(bucket, refresh_seconds, results_prefix, pointer_key=pointer_key),
               "AWS_ENDPOINT_URL_S3": endpoint_url, reaper.OWNER_VARIABLE: self.owner}
        factory = self.sandbox_factory(env)
        self.report.status(f"starting {plural(instances, 'Lambda emulator instance')}")
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
