"""What rcyc keeps in a bucket: model versions under models/<name>/<version>/ with the "current model"
pointer, and images. Plain S3 operations on a client the caller made (AWS, or a local endpoint)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import mimetypes
import os
import secrets
from pathlib import Path
from typing import Callable, NamedTuple

from rcyc_core.errors import InputError, ModelError
from rcyc_core.manifest import MANIFEST_NAME, Manifest, sha256_file
from rcyc_core.s3 import NOT_FOUND_CODES, client_error_code

from ..defaults import MODELS_PREFIX, POINTER_KEY
from .aws import aws_call, get_or_none, translate

Progress = Callable[[str, int, int], None]


def model_prefix(manifest: Manifest, root: str = "") -> str:
    """Where a version lives: models/<name>/<version>/ (under ``root``, a run's own prefix, for a one-off run
    on a shared bucket)."""
    return f"{root}{MODELS_PREFIX}{manifest.name}/{manifest.version}/"


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


def checksum_sha256(hex_digest: str) -> str:
    """S3's ChecksumSHA256 form of a sha256 (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _put_verified(s3, bucket: str, key: str, body, sha256: str, **extra) -> str | None:
    """One PUT carrying ChecksumSHA256 (S3 refuses bytes that do not match it and keeps it with the
    object); the new object's VersionId (None on an unversioned bucket)."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                             ChecksumSHA256=checksum_sha256(sha256), **extra)
    return response.get("VersionId")


def model_files(manifest: Manifest, directory: Path, root: str = "") -> list[tuple[Path, str]]:
    """(local file, S3 key) of every file the manifest names, each checked against its sha256 (the local
    files sit beside the manifest; in the bucket, under its ``files_prefix``)."""
    prefix = model_prefix(manifest, root) + manifest.files_prefix
    local = dataclasses.replace(manifest, files_prefix="")
    return [(path, prefix + path.relative_to(directory).as_posix())
            for fmt in ("h5", "tflite") if local.has(fmt) for path in local.verify_local(directory, fmt)]


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


def version_taken_error(bucket: str, manifest: Manifest) -> InputError:
    return InputError(
        f"s3://{bucket}/{model_prefix(manifest)} holds objects but no manifest (another upload of it is under way, or "
        f"its manifest was deleted): model {manifest.name} version {manifest.version} stays taken",
        kind="VersionExists", hint="Upload it under a new --version (or another --name).")


def _version_taken(s3, bucket: str, prefix: str) -> bool:
    """Anything under the version's prefix: an object, an old version or a delete marker (a version whose
    manifest was deleted is not free again)."""
    try:
        listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return bool(listing.get("Versions") or listing.get("DeleteMarkers"))
    except Exception as exc:
        if client_error_code(exc) not in ("AccessDenied", "403", "NotImplemented"):
            raise translate(f"list s3://{bucket}/{prefix}", exc) from None
    listing = aws_call(f"list s3://{bucket}/{prefix}", s3.list_objects_v2, Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(listing.get("Contents"))


class Published(NamedTuple):
    manifest_key: str
    uploaded: bool  # False: the same content was already published (and every file checked)
    manifest: Manifest  # as published (its files_prefix says where its files are)


def publish_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
                  pointer_key: str = POINTER_KEY, progress: Progress | None = None, root: str = "") -> Published:
    """(manifest key, whether anything was uploaded, the published manifest). A name/version, once taken, never changes: the same
    content again sends nothing (after checking every published file against the manifest); other
    content is refused (InputError, VersionExists), also when the version's manifest was deleted.

    Each upload writes its files under a prefix of its own (``<version>/<upload id>/``, so no other upload
    can overwrite them), each with S3's ChecksumSHA256; then the manifest with a conditional write (one
    winner); a loser removes every object version it wrote. The pointer moves last, and only to a version
    whose every file matches its manifest, so an interrupted upload leaves it on the previous version."""
    prefix = model_prefix(manifest, root)
    manifest_key = prefix + MANIFEST_NAME
    try:
        existing = read_manifest(s3, bucket, manifest_key)
    except ModelError:
        raise version_exists_error(bucket, manifest, None) from None
    uploaded = False
    if existing is None:
        if _version_taken(s3, bucket, prefix):
            raise version_taken_error(bucket, manifest)
        staged = dataclasses.replace(manifest, files_prefix=f"u{secrets.token_hex(8)}/")
        existing, uploaded = _upload_staged(s3, bucket, staged, directory, manifest_key, progress, root)
    elif existing.sha256 != manifest.sha256:
        raise version_exists_error(bucket, manifest, existing.sha256)
    if not uploaded:
        verify_published(s3, bucket, existing, manifest_key)
    if promote and (read_pointer(s3, bucket, pointer_key) or {}).get("sha256") != existing.sha256:
        move_pointer(s3, bucket, existing, manifest_key, pointer_key)
    return Published(manifest_key, uploaded, existing)


def _upload_staged(s3, bucket: str, staged: Manifest, directory: Path, manifest_key: str,
                   progress: Progress | None, root: str = "") -> tuple[Manifest, bool]:
    """(the published manifest, whether this upload published it). Whatever this upload wrote is removed
    unless it won: a refused manifest write, an error or Ctrl-C leaves nothing behind."""
    written: list[tuple[str, str | None]] = []
    won = False
    try:
        for path, key in model_files(staged, directory, root):
            written.append((key, None))
            label = key.rsplit("/", 1)[-1]
            size = path.stat().st_size
            if progress is not None:
                progress(label, 0, size)
            with open(path, "rb") as body:
                written[-1] = (key, aws_call(f"upload {path.name}", _put_verified, s3, bucket, key, body,
                                             sha256_file(path)))
            if progress is not None:
                progress(label, size, size)
        text = staged.to_json().encode()
        try:
            manifest_version = _put_verified(s3, bucket, manifest_key, text, hashlib.sha256(text).hexdigest(),
                                             ContentType="application/json", IfNoneMatch="*")
        except Exception as exc:
            if client_error_code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise translate("upload the manifest", exc) from None
        else:
            # Read back: the conditional write is S3's guarantee; the read confirms this upload's files are
            # the ones the published manifest names before anything points at them.
            published = read_manifest(s3, bucket, manifest_key)
            won = published is not None and published.files_prefix == staged.files_prefix
            if not won and manifest_version:
                # A store that let two conditional writes through (moto checks, then writes; some S3-compatible
                # stores ignore If-None-Match): this upload's own manifest version goes too, never the winner's.
                written.append((manifest_key, manifest_version))
    finally:
        if not won:
            _purge(s3, bucket, written)
    if won:
        return staged, True
    existing = read_manifest(s3, bucket, manifest_key)  # another upload published it first
    if existing is None or existing.sha256 != staged.sha256:
        raise version_exists_error(bucket, staged, existing.sha256 if existing else None)
    return existing, False


def _purge(s3, bucket: str, written: list[tuple[str, str | None]]) -> None:
    """Remove what an upload wrote: by VersionId on a versioned bucket (a plain delete would only add a
    marker and keep the bytes)."""
    for key, version_id in written:
        kwargs = {"VersionId": version_id} if version_id else {}
        try:
            s3.delete_object(Bucket=bucket, Key=key, **kwargs)
        except Exception:  # best effort: the upload's own failure is what the user needs to see
            pass


def verify_published(s3, bucket: str, manifest: Manifest, manifest_key: str) -> None:
    """Every file of a published version against the manifest's sha256 (ModelError naming the first that
    is missing or differs): S3's stored ChecksumSHA256 where the object has one, else its bytes."""
    prefix = manifest_key.rsplit("/", 1)[0] + "/"
    where = f"model {manifest.name} {manifest.version}"
    for fmt in ("h5", "tflite"):
        if not manifest.has(fmt):
            continue
        for ref in manifest.files(fmt):
            key = prefix + manifest.object_path(ref)
            head = get_or_none(f"check s3://{bucket}/{key}", s3.head_object, NOT_FOUND_CODES, Bucket=bucket, Key=key,
                               ChecksumMode="ENABLED")
            if head is None:
                raise ModelError(f"{where} is incomplete: s3://{bucket}/{key} is missing", kind="ModelUnavailable",
                                 hint="A published version never changes: upload the model under a new --version.")
            stored = head.get("ChecksumSHA256") or ""
            if stored and "-" not in stored:  # a whole-object checksum S3 verified when the object was written
                actual = base64.b64decode(stored).hex()
            else:
                actual = _sha256_of_object(s3, bucket, key)
            if actual != ref.sha256:
                raise ModelError(f"{where} is corrupt: s3://{bucket}/{key} has sha256 {actual[:12]}…, the manifest "
                                 f"says {ref.sha256[:12]}… (changed after publishing)", kind="ModelIntegrityError",
                                 hint="A published version never changes: upload the model under a new --version.")


def _sha256_of_object(s3, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = aws_call(f"read s3://{bucket}/{key}", s3.get_object, Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def put_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
              pointer_key: str = POINTER_KEY, progress: Progress | None = None, root: str = "") -> str:
    """``publish_model``, returning the manifest key."""
    return publish_model(s3, bucket, manifest, directory, promote, pointer_key, progress, root)[0]


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


def put_images(s3, bucket: str, pairs: list[tuple[Path, str]], content_types: dict[Path, str] | None = None,
                  progress: Progress | None = None) -> None:
    for path, key in pairs:
        content_type = (content_types or {}).get(path) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        _upload_file(s3, path, bucket, key, progress, {"ContentType": content_type})

