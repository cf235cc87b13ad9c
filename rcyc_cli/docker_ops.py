"""Docker operations through the docker SDK: build the function image, run it under the emulator.

Every build and run uses host networking (no bridge networks needed). The build context is assembled here
from just the files the Dockerfile uses, so it is small and the same on every machine.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rcyc_core.errors import InputError, PrerequisiteError, RcycError

from .paths import REPO_ROOT

DEFAULT_BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
DEFAULT_REPOSITORY = "rcyc-function"
FLAVORS = ("slim", "keras")
NO_ENGINE_HINT = (
    "Start the Docker engine (systemctl start docker, or dockerd &), or point DOCKER_HOST at one; "
    "invoke-local --runtime process needs no Docker."
)


class BuildError(RcycError):
    kind = "BuildFailed"
    exit_code = 3


def engine(timeout: int = 600):
    """A docker client whose engine answers, or PrerequisiteError with how to start one."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # DockerException, connection errors, permission errors
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise PrerequisiteError(f"no Docker engine answers ({detail})", hint=NO_ENGINE_HINT) from None


def has_image(client, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except Exception:  # ImageNotFound, or an engine error: either way not usable without a pull
        return False


def context_files(root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(file, name in context) for everything the Dockerfile copies, and nothing else."""
    files = [(root / "Dockerfile", "Dockerfile"), (root / "lambda" / "app.py", "lambda/app.py"),
             (root / "lambda" / "entry.sh", "lambda/entry.sh"), (root / ".build" / "README", ".build/README")]
    files += [(p, f"lambda/{p.name}") for p in sorted((root / "lambda").glob("requirements-*.txt"))]
    package = root / "lambda" / "rcyc_core"
    files += [(p, f"lambda/rcyc_core/{p.relative_to(package).as_posix()}") for p in sorted(package.rglob("*.py"))]
    return files


def build_context(ca_bundle: Path | None = None, root: Path = REPO_ROOT) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entries = context_files(root)
        if ca_bundle is not None:
            if not Path(ca_bundle).is_file():
                raise InputError(f"the CA bundle {ca_bundle} does not exist", hint="Give a PEM file, e.g. /etc/ssl/certs/ca-certificates.crt.")
            entries.append((Path(ca_bundle), ".build/ca-bundle.crt"))
        for path, name in entries:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0  # fixed metadata: the same files give the same context
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    size: int
    steps: int
    cached_steps: int
    seconds: float
    work_steps: int = 0  # RUN/COPY/ADD steps: the ones that can be cached or rebuilt
    log: list[str] = field(default_factory=list)

    @property
    def cache_hit(self) -> bool:
        """Every step that could run came from the cache: nothing was rebuilt."""
        return self.steps > 0 and self.cached_steps >= self.work_steps

    def to_dict(self) -> dict:
        return {"image_id": self.image_id, "tags": self.tags, "size": self.size, "steps": self.steps,
                "cached_steps": self.cached_steps, "cache_hit": self.cache_hit, "seconds": round(self.seconds, 2)}


STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)")
WORK_INSTRUCTIONS = ("RUN", "COPY", "ADD")


def build(client, tag: str, flavor: str = "slim", base_image: str = DEFAULT_BASE_IMAGE, platform: str | None = None,
          ca_bundle: Path | None = None, no_cache: bool = False,
          on_step: Callable[[int, int, str], None] = lambda step, total, text: None, root: Path = REPO_ROOT) -> BuildResult:
    """Build the function image with the classic builder, reporting each step as it starts."""
    if flavor not in FLAVORS:
        raise InputError(f"unknown flavour {flavor!r}", hint=f"Use one of: {', '.join(FLAVORS)}.")
    started = time.monotonic()
    log: list[str] = []
    steps = cached = work = 0
    image_id = None
    current = ""
    stream = client.api.build(
        fileobj=build_context(ca_bundle, root), custom_context=True, tag=tag, rm=True, forcerm=True, nocache=no_cache,
        pull=False, decode=True, network_mode="host", platform=platform,
        buildargs={"BASE_IMAGE": base_image, "FLAVOR": flavor},
    )
    for chunk in stream:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            tail = [line for line in log[-15:] if line.strip()]
            error = BuildError(f"the image build failed at {current or 'the start'}: {detail.strip()}",
                               hint=_build_hint(detail, base_image))
            error.logs = tail
            raise error
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        text = chunk.get("stream", "")
        for line in text.splitlines():
            log.append(line)
            if (match := STEP_RE.match(line)):
                steps, current = int(match[1]), line
                if match[3].split(" ", 1)[0].upper() in WORK_INSTRUCTIONS:
                    work += 1
                on_step(int(match[1]), int(match[2]), match[3])
            elif "Using cache" in line:
                cached += 1
    if image_id is None:
        raise BuildError("the engine finished the build without an image id", hint="Run again with --no-cache.")
    image = client.images.get(image_id)
    return BuildResult(image_id=image.id, tags=image.tags, size=image.attrs.get("Size", 0), steps=steps, cached_steps=cached,
                       seconds=time.monotonic() - started, log=log, work_steps=work)


def _build_hint(detail: str, base_image: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in detail or "SSL" in detail:
        return "pip could not verify TLS: behind a TLS-intercepting proxy, pass --ca-bundle /etc/ssl/certs/ca-certificates.crt."
    if "pull access denied" in detail or "not found" in detail or "manifest unknown" in detail or "no such host" in detail:
        return f"The base image {base_image} is not available to this engine: pull it, or pass --base-image."
    return "The build log is above."


def image_layers(client, image_id: str, base_image: str) -> tuple[int, int]:
    """(total size, size of the layers this Dockerfile added on top of the base)."""
    total = client.images.get(image_id).attrs.get("Size", 0)
    try:
        base = client.images.get(base_image).attrs.get("Size", 0)
    except Exception:
        base = 0
    return total, total - base
