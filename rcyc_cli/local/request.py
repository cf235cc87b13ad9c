"""What one invoke-local run works on, read and checked before anything starts: the images' bytes, the
event, and the model (a refusal costs no emulator and no S3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rcyc_core import events
from rcyc_core.errors import EventError, InputError
from rcyc_core.manifest import Manifest

from ..defaults import IMAGES_PREFIX, LAMBDA_MAX_PAYLOAD
from ..files import IMAGE_SUFFIXES, expand_images, keyed_by_name, read_regular, regular_size
from ..model_source import resolve_model
from ..reporting import SILENT, Reporter
from .session import Upload


@dataclass(frozen=True)
class Request:
    paths: list[Path]  # the image files as the user named them (or found in the folders named)
    uploads: list[Upload]
    event: dict | None
    manifest: Manifest
    model_dir: Path
    model_given: bool  # --model was passed (a shared bucket's own model answers otherwise)


def read_request(images: list[Path], event_file: Path | None, model: Path | None, report: Reporter = SILENT) -> Request:
    """The run's inputs, each refused with one line (exit 3) before anything starts."""
    event = load_event(event_file) if event_file else None
    paths = expand_images(images)
    if not paths and event is None:
        raise InputError(f"no image files in {', '.join(map(str, images))}",
                         hint=f"Give image files ({', '.join(sorted(IMAGE_SUFFIXES))}), a directory holding some, or --event.")
    uploads = read_uploads(paths)
    manifest, model_dir = resolve_model(model, report.status)
    return Request(paths, uploads, event, manifest, model_dir, model is not None)


def read_uploads(paths: list[Path]) -> list[Upload]:
    """Each image (a regular file of at most what the function accepts), refused before anything starts if two
    files of one name would be one object; its bytes are read when it is sent."""
    import mimetypes

    from rcyc_core.config import Config

    keyed_by_name(paths, IMAGES_PREFIX)
    limit = Config().max_bytes
    # checked now, read when sent: memory stays flat however many files a run names
    return [Upload(path.name, None, mimetypes.guess_type(path.name)[0] or "application/octet-stream", path,
                   regular_size(path, limit, what="image"), limit) for path in paths]


def load_event(path: Path) -> dict:
    """The event file, refused before anything starts if Lambda would refuse it: more than the 6 MB a
    synchronous invoke carries, not UTF-8, not strict JSON (NaN, Infinity), nested too deep, no shape the
    function reads (docs/events.md), or no record at all."""
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
    if not events.parse(event):  # a malformed event is refused here too, before anything starts
        # Nothing to classify, skip or refuse: the run would answer nothing and exit 0 (a quiet wrong answer).
        raise EventError(f"the event {path} holds no records: nothing would be classified")
    return event


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON (Lambda refuses it)")
