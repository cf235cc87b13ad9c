"""One run's images on a bucket: uploaded under the run's own prefix (in parallel), posted as one event or
as batches over a pool, and removed afterwards. The one-shot invoke-local and the warm stack (which takes a
run's image bytes over its own API, so a warm call needs no S3 client of its own) both run this."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rcyc_core import events

from ..cloud import aws
from ..defaults import IMAGES_PREFIX
from ..invocation import Invocation
from ..reporting import SILENT, Reporter, plural

RUNS_PREFIX = "runs/"  # on a bucket other runs can reach, each run keeps to runs/<run id>/
UPLOAD_WORKERS = 8  # S3 puts in flight at once: one at a time cost 1.7 s of a 4.2 s run of 200 images


@dataclass
class Upload:
    name: str  # the file's name: its key is <prefix>images/<name>
    body: bytes | None  # None: read from ``path`` only when sent (checked, not read, before the run starts)
    content_type: str
    path: Path | None = None
    size: int = 0  # bytes (``body``'s, or the file's when it was checked)
    limit: int | None = None  # the most bytes the file may have grown to when it is read

    def data(self) -> bytes:
        from ..files import read_regular

        return self.body if self.body is not None else read_regular(self.path, self.limit, what="image")


@dataclass
class Outcome:
    response: dict
    invocations: list[Invocation]
    seconds: float


def image_key(prefix: str, upload: Upload) -> str:
    return f"{prefix}{IMAGES_PREFIX}{upload.name}"


def put_images(s3, bucket: str, prefix: str, uploads: list[Upload]) -> list[str]:
    """Upload every image (in parallel); returns their keys, in order."""
    keys = [image_key(prefix, upload) for upload in uploads]

    def put(pair: tuple[str, Upload]) -> None:
        key, upload = pair
        aws.aws_call(f"upload {key}", s3.put_object, Bucket=bucket, Key=key, Body=upload.data(),
                     ContentType=upload.content_type)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, max(1, len(uploads)))) as pool:
        list(pool.map(put, zip(keys, uploads)))
    return keys


def remove_prefix(s3, bucket: str, prefix: str) -> bool:
    """Remove a run's objects from a shared bucket, every version of them (on a versioned bucket a plain
    delete only adds a marker and keeps the bytes, readable by VersionId). Never raises: cleanup must not mask
    the run's own outcome; returns whether the prefix is known to be gone (S3 refused or failed no key of it:
    DeleteObjects answers 200 with per-key Errors, an AccessDenied among them)."""
    try:
        paginator = s3.get_paginator("list_object_versions")
        gone = True
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if keys:
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                gone = gone and not answer.get("Errors")
        return gone
    except Exception:  # noqa: BLE001 - cleanup must never mask the run's own outcome
        return False


def run_copies(keys: list[str]) -> dict[str, str]:
    """Where an event's keys point for this run: an uploaded file's name, at the bucket root or under
    images/ (the seed's ``2.jpg``, or ``images/2.jpg``), is this run's copy of that file."""
    moved = {}
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        moved[name] = moved[f"{IMAGES_PREFIX}{name}"] = key
    return {old: new for old, new in moved.items() if old != new}


def invoke_images(invoke: Callable[[dict], Invocation], bucket: str, keys: list[str], prefix: str, event: dict | None,
                  concurrency: int, batch_size: int, report: Reporter = SILENT) -> Outcome:
    """Post ``event`` (its records rebased onto this run's keys), or the keys as events: one for all of them,
    or batches of up to ``batch_size`` spread over ``concurrency`` instances."""
    started = time.perf_counter()
    if event is not None:
        event, count = events.rebase(event, run_copies(keys), bucket)  # another bucket's objects are its own
        if count:
            report.status(f"{plural(count, 'record')} of the event point at this run's own copies of the images")
        report.status("invoking the function with the event")
        answer = invoke(event)
        return Outcome(answer.response, [answer], time.perf_counter() - started)
    from .emulator.pool import event_sizes, run_keys

    batch = len(keys) if concurrency <= 1 else batch_size  # one instance: the whole run is one event
    report.status(f"invoking the function: {plural(len(keys), 'image')}, "
                  f"{plural(len(event_sizes(len(keys), batch, concurrency)), 'event')}, concurrency {concurrency}")
    report.expect(len(keys))
    done = run_keys(invoke, bucket, keys, batch_size=batch, concurrency=concurrency, on_done=report.done)
    return Outcome(done.response, done.invocations, time.perf_counter() - started)
