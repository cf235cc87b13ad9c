"""A model version from the bucket, on local disk: ``current`` (the pointer) or ``NAME/VERSION``.

Downloaded once into the cache, under the manifest's own sha256, and verified file by file, so it can be
used wherever a local model directory is (predict, eval)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from rcyc_core.errors import InputError, ModelError
from rcyc_core.manifest import MANIFEST_NAME

from ..defaults import MODELS_PREFIX
from ..paths import cache_dir
from ..reporting import SILENT, Reporter
from . import store
from .aws import Aws, aws_call

BUCKET_REF = re.compile(r"^(current|[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[A-Za-z0-9][A-Za-z0-9._-]{0,127})$")


def is_bucket_ref(value: str) -> bool:
    return bool(BUCKET_REF.match(value))


def fetch_model(ref: str, bucket: str, region: str | None = None, report: Reporter = SILENT) -> Path:
    """The local directory of the model ``ref`` names in ``bucket`` (downloaded and verified if needed)."""
    if not is_bucket_ref(ref):
        raise InputError(f"{ref!r} is neither a local model nor a model in the bucket",
                         hint="Give a model path, 'current', or NAME/VERSION (rcyc models list).")
    s3 = Aws(region).client("s3")
    expected = None
    if ref == "current":
        pointer = store.read_pointer(s3, bucket)
        if pointer is None:
            raise ModelError(f"s3://{bucket} has no current model", kind="ModelUnavailable",
                             hint="rcyc upload-model PATH makes one current.")
        manifest_key, expected = pointer["manifest"], pointer.get("sha256")
    else:
        manifest_key = f"{MODELS_PREFIX}{ref}/{MANIFEST_NAME}"
    manifest = store.read_manifest(s3, bucket, manifest_key)
    if manifest is None:
        raise ModelError(f"s3://{bucket}/{manifest_key} does not exist", kind="ModelUnavailable",
                         hint="rcyc models list shows the uploaded versions.")
    if expected is not None and manifest.sha256 != expected:
        # As the function does at every load: the manifest must be the one the pointer names.
        raise ModelError(f"s3://{bucket}/{manifest_key} has sha256 {manifest.sha256}, the pointer names {expected}",
                         kind="ModelIntegrityError", hint="The published manifest changed: upload the model again.")
    text = manifest.to_json().encode()
    target = cache_dir() / "bucket-models" / manifest.sha256
    if (target / MANIFEST_NAME).is_file():
        return target
    report.status(f"downloading {manifest.name} {manifest.version} from s3://{bucket}/{manifest_key.rsplit('/', 1)[0]}/")
    prefix = manifest_key.rsplit("/", 1)[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
    try:
        for fmt in ("h5", "tflite"):
            if manifest.has(fmt):
                for ref_file in manifest.files(fmt):
                    relative = manifest.object_path(ref_file)
                    destination = partial / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    aws_call(f"download s3://{bucket}/{prefix}/{relative}", s3.download_file, bucket,
                             f"{prefix}/{relative}", str(destination))
                manifest.verify_local(partial, fmt)  # every file against its sha256
        (partial / MANIFEST_NAME).write_bytes(text)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def local_or_bucket(value: str | None, bucket: str, region: str | None = None,
                    status: Callable[[str], None] = lambda message: None) -> Path | None:
    """A --model value as a local path: a path that exists as it is, else ``current`` or NAME/VERSION in
    ``bucket`` (downloaded and verified). None means the default model."""
    if value is None or Path(value).exists():
        return Path(value) if value is not None else None
    return fetch_model(str(value), bucket, region, Reporter(status=status))
