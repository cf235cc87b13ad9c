"""The model named by the "current model" pointer: loaded once per instance, cached on local disk by
sha256, and re-checked with a conditional GET at most every ``refresh_seconds``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path, PurePosixPath

from . import backends
from .config import Config
from .errors import ModelError, RcycError
from .inference import Classifier
from .log import log
from .manifest import Manifest
from .s3 import NOT_MODIFIED_CODES, client_error_code, model_read_error


class ModelStore:
    """The model named by the pointer object, loaded once and refreshed cheaply."""

    def __init__(self, s3, config: Config, clock=time.monotonic):
        self.s3, self.config, self.clock = s3, config, clock
        self.classifier: Classifier | None = None
        self._manifest_key: str | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")

    def current(self) -> Classifier:
        now = self.clock()
        if self.classifier is not None and now - self._checked_at < self.config.refresh_seconds:
            return self.classifier
        try:
            self._refresh()
        except RcycError as exc:
            if self.classifier is None:
                raise
            # Keep serving the model we have; a bad new version must not take the function down.
            log("model_refresh_failed", error=exc.kind, message=exc.message)
        finally:
            self._checked_at = now
        return self.classifier

    def _refresh(self) -> None:
        bucket, key = self.config.model_bucket, self.config.pointer_key
        if not bucket:
            raise ModelError("RCYC_MODEL_BUCKET is not set", kind="ModelUnavailable", hint="Set it to the model bucket.")
        kwargs = {"IfNoneMatch": self._etag} if self._etag and self.classifier else {}
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, **kwargs)
        except Exception as exc:
            code = client_error_code(exc)
            if code in NOT_MODIFIED_CODES:
                return
            raise model_read_error(exc, f"s3://{bucket}/{key}", "model pointer") from None
        body = response["Body"].read()
        try:
            pointer = json.loads(body)
            manifest_key, expected = pointer["manifest"], pointer["sha256"]
            if not isinstance(manifest_key, str) or not isinstance(expected, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"s3://{bucket}/{key} is not a model pointer (it needs \"manifest\" and \"sha256\")",
                             kind="ModelUnavailable") from None
        # Reload when the pointer names another manifest or another sha256; every load checks the manifest
        # it reads against the pointer's sha256 (and each file against the manifest).
        same = (self.classifier is not None and manifest_key == self._manifest_key
                and expected == self.classifier.manifest.sha256)
        if not same:
            self.classifier = self._load(bucket, manifest_key, expected)
            self._manifest_key = manifest_key
            log("model_loaded", model=self.classifier.manifest.summary(), backend=self.config.backend)
            self._prune_cache(self.classifier.manifest)
        self._etag = response.get("ETag")

    def _prune_cache(self, manifest: Manifest) -> None:
        """Keep only the current model's files: /tmp is small (512 MB by default on Lambda), and a loaded
        model no longer needs its files (an open or mapped file survives its unlinking)."""
        keep = {f"{ref.sha256}.{fmt}" for fmt in backends.FORMAT_OF.values() if manifest.has(fmt) for ref in manifest.files(fmt)}
        for path in (self.config.cache_dir / "models").glob("*"):
            if path.name not in keep and not path.name.endswith(".part"):
                path.unlink(missing_ok=True)

    def _load(self, bucket: str, manifest_key: str, expected_sha256: str) -> Classifier:
        try:
            text = self.s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        except Exception as exc:
            raise model_read_error(exc, f"s3://{bucket}/{manifest_key}", "model manifest") from None
        manifest = Manifest.from_json(text, source=f"s3://{bucket}/{manifest_key}")
        if manifest.sha256 != expected_sha256:
            raise ModelError(
                f"s3://{bucket}/{manifest_key} has sha256 {manifest.sha256}, the pointer names {expected_sha256}",
                kind="ModelIntegrityError",
                hint="The manifest changed after it was published: promote a published version again (rcyc models promote).",
            )
        prefix = PurePosixPath(manifest_key).parent
        fmt = backends.FORMAT_OF.get(self.config.backend)
        if fmt is None:
            raise ModelError(f"RCYC_BACKEND={self.config.backend!r} is not one of {', '.join(backends.BACKENDS)}")
        paths = [self._fetch_file(bucket, f"{prefix}/{manifest.object_path(ref)}", ref.sha256, fmt) for ref in manifest.files(fmt)]
        backend = backends.open_paths(self.config.backend, paths)
        backends.check_behaviour(manifest, backend)
        return Classifier(manifest, backend)

    def _chunks(self, bucket: str, key: str):
        """The object's bytes, a MB at a time; a failed read (S3 refused, unreachable, cut short) is the model's error."""
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            while chunk := body.read(1 << 20):
                yield chunk
        except Exception as exc:
            raise model_read_error(exc, f"s3://{bucket}/{key}", "model file") from None

    def _fetch_file(self, bucket: str, key: str, sha256: str, fmt: str) -> Path:
        """Download into the cache under a name derived from the sha256 only (never from the key),
        atomically (temp file + rename) and verified, so a half-written or wrong file is never used."""
        directory = self.config.cache_dir / "models"
        target = directory / f"{sha256}.{fmt}"  # sha256 is 64 hex digits (the manifest checks): never a path
        if target.exists():
            return target
        digest = hashlib.sha256()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {directory}: {exc.strerror}", kind="CacheUnwritable") from None
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self._chunks(bucket, key):
                    digest.update(chunk)
                    out.write(chunk)  # a failed write is the cache's (a full /tmp), below: never "cannot reach S3"
            if digest.hexdigest() != sha256:
                raise ModelError(
                    f"s3://{bucket}/{key} has sha256 {digest.hexdigest()[:12]}…, the manifest says {sha256[:12]}…",
                    kind="ModelIntegrityError",
                    hint="Upload the model again with rcyc upload-model.",
                )
            os.replace(tmp, target)
            return target
        except OSError as exc:  # a full /tmp, typically
            raise ModelError(f"cannot write {target.name} into the model cache: {exc.strerror}", kind="CacheUnwritable") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


