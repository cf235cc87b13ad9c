"""The function image, through the docker SDK: find an engine, build the image with live progress.

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

from .defaults import DEFAULT_BASE_IMAGE, DEFAULT_FLAVOR, DEFAULT_REPOSITORY, FLAVORS
from .paths import REPO_ROOT, require_checkout
from .reporting import SILENT, Reporter

NO_ENGINE_HINT = (
    "Start the Docker engine (systemctl start docker, or dockerd &), or point DOCKER_HOST at one; "
    "invoke-local --runtime process needs no Docker."
)


class BuildError(InputError):
    kind = "BuildFailed"


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
    if root == REPO_ROOT:
        require_checkout()
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
    work_steps: int = 0  # RUN/COPY/ADD steps: the ones that can be cached or rebuilt (cached_steps counts only these)
    log: list[str] = field(default_factory=list)

    @property
    def cache_hit(self) -> bool:
        """Every step that could run came from the cache: nothing was rebuilt."""
        return self.steps > 0 and self.cached_steps == self.work_steps

    def to_dict(self) -> dict:
        return {"image_id": self.image_id, "tags": self.tags, "size": self.size, "steps": self.steps,
                "cached_steps": self.cached_steps, "cache_hit": self.cache_hit, "seconds": round(self.seconds, 2)}


STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)")
WORK_INSTRUCTIONS = ("RUN", "COPY", "ADD")


def build(client, tag: str, flavor: str = DEFAULT_FLAVOR, base_image: str = DEFAULT_BASE_IMAGE, platform: str | None = None,
          ca_bundle: Path | None = None, no_cache: bool = False,
          on_step: Callable[[int, int, str], None] = lambda step, total, text: None, root: Path = REPO_ROOT,
          context: io.BytesIO | None = None) -> BuildResult:
    """Build the function image with the classic builder, reporting each step as it starts. ``context``: another
    image's build context (the training image's, rcyc_cli/train/container.py) instead of the function's."""
    if flavor not in FLAVORS:
        raise InputError(f"unknown flavour {flavor!r}", hint=f"Use one of: {', '.join(FLAVORS)}.")
    started = time.monotonic()
    progress = _BuildProgress(on_step, base_image)
    try:
        stream = client.api.build(
            fileobj=context or build_context(ca_bundle, root), custom_context=True, tag=tag, rm=True, forcerm=True, nocache=no_cache,
            pull=False, decode=True, network_mode="host", platform=platform,
            buildargs={"BASE_IMAGE": base_image, "FLAVOR": flavor},
        )
        for chunk in stream:
            progress.feed(chunk)
        image = client.images.get(progress.image_id) if progress.image_id else None
    except RcycError:
        raise
    except Exception as exc:  # the connection to the engine broke: it stopped or went away mid-build
        raise engine_gone(exc, f"during the build (at {progress.current or 'the start'})") from None
    if image is None:
        if not answers(client):
            raise engine_gone(ConnectionError("no answer"), f"during the build (at {progress.current or 'the start'})")
        raise BuildError("the engine finished the build without an image id", hint="Run again with --no-cache.")
    return BuildResult(image_id=image.id, tags=image.tags, size=image.attrs.get("Size", 0), steps=progress.steps,
                       cached_steps=progress.cached, seconds=time.monotonic() - started, log=progress.log,
                       work_steps=progress.work)


def answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def engine_gone(exc: Exception, when: str) -> PrerequisiteError:
    return PrerequisiteError(f"the Docker engine stopped answering {when}: {type(exc).__name__}",
                             hint="Start the engine again and rerun; nothing rcyc started is left running.")


@dataclass
class _BuildProgress:
    """What the build stream has said so far: steps, cache hits, the image id, the log."""

    on_step: Callable[[int, int, str], None]
    base_image: str
    log: list[str] = field(default_factory=list)
    image_id: str | None = None
    steps: int = 0
    cached: int = 0
    work: int = 0
    current: str = ""
    _current_is_work: bool = False

    def feed(self, chunk: dict) -> None:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            error = BuildError(f"the image build failed at {self.current or 'the start'}: {detail.strip()}",
                               hint=_build_hint(detail, self.base_image))
            error.logs = [line for line in self.log[-15:] if line.strip()]
            raise error
        if "aux" in chunk and "ID" in chunk["aux"]:
            self.image_id = chunk["aux"]["ID"]
        for line in chunk.get("stream", "").splitlines():
            self.log.append(line)
            if (match := STEP_RE.match(line)):
                self.steps, self.current = int(match[1]), line
                self._current_is_work = match[3].split(" ", 1)[0].upper() in WORK_INSTRUCTIONS
                self.work += self._current_is_work
                self.on_step(int(match[1]), int(match[2]), match[3])
            elif "Using cache" in line and self._current_is_work:
                self.cached += 1  # only RUN/COPY/ADD count: they are what a cache miss would redo


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


def build_tagged(tags: list[str], flavor: str = DEFAULT_FLAVOR, base_image: str | None = None, platform: str | None = None,
                 ca_bundle: Path | None = None, no_cache: bool = False, report: Reporter = SILENT) -> dict:
    """``rcyc build``: build the function image under every tag in ``tags`` (default rcyc-function:<flavor>)
    and summarise it: id, tags, sizes, cache hit."""
    from docker.utils import parse_repository_tag

    client = engine()
    base = base_image or DEFAULT_BASE_IMAGE
    tags = list(tags) or [f"{DEFAULT_REPOSITORY}:{flavor}"]
    result = build(client, tags[0], flavor, base, platform, ca_bundle, no_cache, on_step=report.build_step)
    image = client.images.get(result.image_id)
    for tag in tags[1:]:
        image.tag(*parse_repository_tag(tag))
    total, own = image_layers(client, result.image_id, base)
    return {**result.to_dict(), "tags": client.images.get(result.image_id).tags, "size": total, "own_layers_size": own,
            "flavor": flavor, "base_image": base}
