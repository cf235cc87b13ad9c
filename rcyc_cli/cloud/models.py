"""Model versions in the bucket: upload (validate, package, then move the pointer last), list, promote."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rcyc_core.errors import InputError, ModelError
from rcyc_core.manifest import MANIFEST_NAME

from ..defaults import DEFAULT_PROMOTE_ON_UPLOAD, MODELS_PREFIX, POINTER_KEY
from ..reporting import SILENT, Reporter
from . import buckets, store
from .aws import Aws, aws_call


SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")



def _check_segment(value: str, what: str) -> str:
    if not SAFE_SEGMENT.match(value or ""):
        raise InputError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (at most 128)", hint=f"Pick another {what}.")
    return value



def upload_model(path: Path, bucket: str, name: str | None = None, version: str | None = None, promote: bool = DEFAULT_PROMOTE_ON_UPLOAD,
                 region: str | None = None, report: Reporter = SILENT) -> dict:
    """Validate and package PATH (a .h5/.keras file, a Portland State directory or a manifest directory),
    check it by behaviour on probe inputs, upload it under models/<name>/<version>/ (a published version
    never changes: the same content again sends nothing, other content is refused) and, with ``promote``,
    move the pointer to it last."""
    from rcyc_core import backends

    from ..model_source import resolve_model

    buckets.validate_bucket_name(bucket)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="Give a .h5/.keras file or a directory of model files.")
    manifest, directory = resolve_model(path, report.status)
    if name or version:
        manifest = dataclasses.replace(manifest, name=name or manifest.name, version=version or manifest.version)
    _check_segment(manifest.name, "model name")
    _check_segment(manifest.version, "model version")
    report.status(f"checking {manifest.name} {manifest.version} on probe inputs")
    backends.load(manifest, directory, "litert" if manifest.has("tflite") else "keras")  # verifies files, then behaviour
    aws = Aws(region)
    s3 = aws.client("s3")
    report.status(f"checking bucket {bucket}")
    created = buckets.ensure_private_bucket(s3, bucket, aws.region)
    previous = store.read_pointer(s3, bucket)
    report.status(f"uploading model {manifest.name} {manifest.version} to s3://{bucket}/{store.model_prefix(manifest)}")
    manifest_key, uploaded, published = store.publish_model(s3, bucket, manifest, directory, promote=promote,
                                                            progress=report.upload)
    files = store.model_files(published, directory)
    return {
        "bucket": bucket,
        "bucket_created": created,
        "name": manifest.name,
        "version": manifest.version,
        "layout": manifest.layout,
        "sha256": manifest.sha256,
        "manifest": manifest_key,
        "uploaded": uploaded,
        "files": [{"key": key, "bytes": p.stat().st_size} for p, key in files],
        "promoted": promote,
        "pointer": POINTER_KEY,
        "previous": previous,
    }



def list_models(bucket: str, region: str | None = None) -> dict:
    """Every uploaded model version (models/<name>/<version>/manifest.json) and which one is current."""
    buckets.validate_bucket_name(bucket)
    s3 = Aws(region).client("s3")
    current = store.read_pointer(s3, bucket)
    paginator = s3.get_paginator("list_objects_v2")
    models = []
    pages = aws_call(f"list s3://{bucket}/{MODELS_PREFIX}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=MODELS_PREFIX)))
    for page in pages:
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) == 4 and parts[3] == MANIFEST_NAME:
                models.append({"name": parts[1], "version": parts[2], "manifest": obj["Key"],
                               "uploaded": obj["LastModified"].isoformat(), "current": bool(current and current["manifest"] == obj["Key"])})
    models.sort(key=lambda m: (m["name"], m["uploaded"]))
    listing = {"bucket": bucket, "current": current, "models": models, "warnings": []}
    if current and not any(m["current"] for m in models):
        # The function cannot load what the pointer names: new instances fail, warm ones serve an older model.
        listing["warnings"].append(pointer_problem(bucket, current))
    return listing


def pointer_problem(bucket: str, pointer: dict) -> str:
    return (f"the pointer names s3://{bucket}/{pointer['manifest']}, which does not exist: new function instances "
            "cannot load a model (rcyc models promote NAME VERSION points it at a published version)")



def promote_model(bucket: str, name: str, version: str, region: str | None = None, report: Reporter = SILENT) -> dict:
    """Move the pointer to an uploaded version (also a rollback) after checking it is complete."""
    buckets.validate_bucket_name(bucket)
    _check_segment(name, "model name")
    _check_segment(version, "model version")
    s3 = Aws(region).client("s3")
    buckets.refuse_if_public(s3, bucket)
    manifest_key = f"{MODELS_PREFIX}{name}/{version}/{MANIFEST_NAME}"
    manifest = store.read_manifest(s3, bucket, manifest_key)
    if manifest is None:
        raise ModelError(f"s3://{bucket}/{manifest_key} does not exist", kind="ModelUnavailable",
                         hint="rcyc models list shows the uploaded versions.")
    report.status(f"checking every file of {name} {version} against its manifest")
    store.verify_published(s3, bucket, manifest, manifest_key)
    previous = store.read_pointer(s3, bucket)
    report.status(f"moving the pointer to {name} {version}")
    store.move_pointer(s3, bucket, manifest, manifest_key)
    return {"bucket": bucket, "pointer": POINTER_KEY, "previous": previous,
            "current": json.loads(store.pointer_body(manifest, manifest_key))}
