"""What rcyc keeps in a bucket: model versions under models/<name>/<version>/ with the "current model"
pointer, and images. Plain S3 operations on a client the caller made (AWS, or a local endpoint)."""

from __future__ import annotations

import json
import mimetypes
import os
from pathlib import Path
from typing import Callable, Iterable

from rcyc_core.errors import InputError, ModelError
from rcyc_core.manifest import MANIFEST_NAME, Manifest
from rcyc_core.s3 import NOT_FOUND_CODES

from ..defaults import IMAGES_PREFIX, MODELS_PREFIX, POINTER_KEY
from .aws import aws_call, get_or_none, translate

Progress = Callable[[str, int, int], None]


def model_prefix(manifest: Manifest) -> str:
    return f"{MODELS_PREFIX}{manifest.name}/{manifest.version}/"


def pointer_body(manifest: Manifest, manifest_key: str) -> bytes:
    return json.dumps({"manifest": manifest_key, "name": manifest.name, "version": manifest.version,
                       "sha256": manifest.sha256}).encode()


def _upload_file(s3, path: Path, bucket: str, key: str, progress: Progress | None, extra: dict | None = None) -> None:
    kwargs = {"ExtraArgs": extra} if extra else {}
    if progress is not None:
        size = os.path.getsize(path)
        label = key.rsplit("/", 1)[-1]
        progress(label, 0, size)
        kwargs["Callback"] = lambda sent: progress(label, sent, size)
    aws_call(f"upload {path.name}", s3.upload_file, str(path), bucket, key, **kwargs)


def model_files(manifest: Manifest, directory: Path) -> list[tuple[Path, str]]:
    """(local file, S3 key) of every file the manifest names, each checked against its sha256."""
    prefix = model_prefix(manifest)
    return [(path, prefix + path.relative_to(directory).as_posix())
            for fmt in ("h5", "tflite") if manifest.has(fmt) for path in manifest.verify_local(directory, fmt)]


def read_manifest(s3, bucket: str, manifest_key: str) -> Manifest | None:
    """The manifest published at ``manifest_key``, or None if nothing is there."""
    found = get_or_none(f"read s3://{bucket}/{manifest_key}", s3.get_object, NOT_FOUND_CODES, Bucket=bucket, Key=manifest_key)
    if found is None:
        return None
    return Manifest.from_json(found["Body"].read(), source=f"s3://{bucket}/{manifest_key}")


def version_exists_error(bucket: str, manifest: Manifest, existing_sha256: str | None) -> InputError:
    was = f" (sha256 {existing_sha256})" if existing_sha256 else ""
    return InputError(
        f"model {manifest.name} version {manifest.version} is already published in s3://{bucket}/{model_prefix(manifest)}"
        f"{was} with other content (this one is sha256 {manifest.sha256}); a published version never changes",
        kind="VersionExists", hint="Upload it under a new --version (or another --name).")


def publish_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
                  pointer_key: str = POINTER_KEY, progress: Progress | None = None) -> tuple[str, bool]:
    """(manifest key, whether anything was uploaded). A name/version, once its manifest is written, never
    changes: the same content again sends nothing; other content is refused (InputError, VersionExists).
    Files go first, then the manifest (a conditional write: a concurrent upload of the same version
    cannot replace it), then (promote) the pointer in one write. The pointer moves last, so an
    interrupted upload leaves it on the previous complete version."""
    manifest_key = model_prefix(manifest) + MANIFEST_NAME
    try:
        existing = read_manifest(s3, bucket, manifest_key)
    except ModelError:
        raise version_exists_error(bucket, manifest, None) from None
    uploaded = False
    if existing is None:
        files = model_files(manifest, directory)
        _remove_strays(s3, bucket, model_prefix(manifest), {key for _, key in files})
        for path, key in files:
            _upload_file(s3, path, bucket, key, progress)
        try:
            s3.put_object(Bucket=bucket, Key=manifest_key, Body=manifest.to_json().encode(),
                          ContentType="application/json", IfNoneMatch="*")
        except Exception as exc:
            from rcyc_core.s3 import client_error_code

            if client_error_code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise translate("upload the manifest", exc) from None
            existing = read_manifest(s3, bucket, manifest_key)  # another upload published it first
            if existing is None or existing.sha256 != manifest.sha256:
                raise version_exists_error(bucket, manifest, existing.sha256 if existing else None) from None
        else:
            uploaded = True
    elif existing.sha256 != manifest.sha256:
        raise version_exists_error(bucket, manifest, existing.sha256)
    if promote and (read_pointer(s3, bucket, pointer_key) or {}).get("sha256") != manifest.sha256:
        move_pointer(s3, bucket, manifest, manifest_key, pointer_key)
    return manifest_key, uploaded


def put_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
              pointer_key: str = POINTER_KEY, progress: Progress | None = None) -> str:
    """``publish_model``, returning the manifest key."""
    return publish_model(s3, bucket, manifest, directory, promote, pointer_key, progress)[0]


def _remove_strays(s3, bucket: str, prefix: str, keep: set[str]) -> None:
    """Objects under an unpublished version's prefix that this upload does not write (left by an
    interrupted upload of other content, another layout's files): removed, so the version holds exactly
    what its manifest names."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = aws_call(f"list s3://{bucket}/{prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix)))
    for key in [obj["Key"] for page in pages for obj in page.get("Contents", [])]:
        if key not in keep:
            aws_call(f"remove the leftover s3://{bucket}/{key}", s3.delete_object, Bucket=bucket, Key=key)


def read_pointer(s3, bucket: str, pointer_key: str = POINTER_KEY) -> dict | None:
    """The "current model" pointer, or None when there is none (or it is not a pointer)."""
    try:
        body = get_or_none(f"read s3://{bucket}/{pointer_key}", s3.get_object, NOT_FOUND_CODES, Bucket=bucket, Key=pointer_key)
        pointer = json.loads(body["Body"].read()) if body else None
    except ValueError:
        return None
    return pointer if isinstance(pointer, dict) and isinstance(pointer.get("manifest"), str) else None


def move_pointer(s3, bucket: str, manifest: Manifest, manifest_key: str, pointer_key: str = POINTER_KEY) -> None:
    """One write: the function's next pointer check sees either the old model or the new one."""
    aws_call("move the current-model pointer", s3.put_object, Bucket=bucket, Key=pointer_key,
             Body=pointer_body(manifest, manifest_key), ContentType="application/json")


def image_keys(paths: Iterable[Path], prefix: str = IMAGES_PREFIX) -> list[tuple[Path, str]]:
    pairs, seen = [], {}
    for path in paths:
        key = prefix + path.name
        if key in seen and seen[key] != path.resolve():
            raise InputError(f"{seen[key]} and {path} would both be uploaded as {key}", hint="Rename one of them.")
        seen[key] = path.resolve()
        pairs.append((path, key))
    return pairs


def put_images(s3, bucket: str, pairs: list[tuple[Path, str]], content_types: dict[Path, str] | None = None,
                  progress: Progress | None = None) -> None:
    for path, key in pairs:
        content_type = (content_types or {}).get(path) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        _upload_file(s3, path, bucket, key, progress, {"ContentType": content_type})

