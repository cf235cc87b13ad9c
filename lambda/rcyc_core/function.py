"""The Lambda function: S3 event in, result contract out.

One ``Function`` per function instance (module global): the S3 client and the model are built once and
reused by every warm invocation. The model comes from S3 through the "current model" pointer, is cached
on local disk by sha256, and is re-checked with a conditional GET at most every ``refresh_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import backends, events
from .errors import AwsError, ModelError, RcycError
from .inference import Classifier, Item
from .manifest import Manifest
from .preprocess import DEFAULT_MAX_PIXELS
from .results import empty_response, error_entry, skipped_entry

DEFAULT_POINTER_KEY = "models/current.json"


@dataclass(frozen=True)
class Config:
    """The function's environment (README, "Function environment")."""

    model_bucket: str | None = None
    pointer_key: str = DEFAULT_POINTER_KEY
    refresh_seconds: float = 30.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = 50 * 1024 * 1024
    backend: str = "litert"
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "rcyc")
    fetch_workers: int = 8
    results_prefix: str | None = None  # S3-triggered use: write each record's result as JSON here

    @classmethod
    def from_env(cls, env=os.environ) -> "Config":
        defaults = cls()
        return cls(
            model_bucket=env.get("RCYC_MODEL_BUCKET") or None,
            pointer_key=env.get("RCYC_MODEL_POINTER") or DEFAULT_POINTER_KEY,
            refresh_seconds=float(env.get("RCYC_MODEL_REFRESH_SECONDS", defaults.refresh_seconds)),
            max_pixels=int(env.get("RCYC_MAX_PIXELS", defaults.max_pixels)),
            max_bytes=int(env.get("RCYC_MAX_BYTES", defaults.max_bytes)),
            # The keras image flavour has TensorFlow and no LiteRT; its default backend follows.
            backend=env.get("RCYC_BACKEND") or ("keras" if env.get("RCYC_IMAGE_FLAVOR") == "keras" else defaults.backend),
            cache_dir=Path(env.get("RCYC_CACHE_DIR") or defaults.cache_dir),
            results_prefix=env.get("RCYC_RESULTS_PREFIX") or None,
        )


def function_environment(bucket: str, refresh_seconds: float | None = None, results_prefix: str | None = None,
                         pointer_key: str = DEFAULT_POINTER_KEY) -> dict[str, str]:
    """The environment that makes Config.from_env give this configuration (deployments and local sandboxes)."""
    env = {"RCYC_MODEL_BUCKET": bucket, "RCYC_MODEL_POINTER": pointer_key}
    if refresh_seconds is not None:
        env["RCYC_MODEL_REFRESH_SECONDS"] = f"{refresh_seconds:g}"
    if results_prefix:
        env["RCYC_RESULTS_PREFIX"] = results_prefix
    return env


def make_s3_client(workers: int = 8):
    import boto3
    from botocore.config import Config as BotoConfig

    # Short timeouts and few retries: a record whose object cannot be fetched should become an error
    # well inside the function's timeout, not hang the whole invocation.
    return boto3.client(
        "s3",
        config=BotoConfig(
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=workers,
        ),
    )


def client_error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code")


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
            if code in ("304", "NotModified"):
                return
            raise _s3_error(exc, f"s3://{bucket}/{key}", "model pointer") from None
        body = response["Body"].read()
        try:
            pointer = json.loads(body)
            manifest_key = pointer["manifest"]
            if not isinstance(manifest_key, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"s3://{bucket}/{key} is not a model pointer", kind="ModelUnavailable") from None
        # Reload when the pointer names another manifest, or the same one re-uploaded with other contents.
        same = (self.classifier is not None and manifest_key == self._manifest_key
                and pointer.get("sha256") in (None, self.classifier.manifest.sha256))
        if not same:
            self.classifier = self._load(bucket, manifest_key)
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

    def _load(self, bucket: str, manifest_key: str) -> Classifier:
        try:
            text = self.s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        except Exception as exc:
            raise _s3_error(exc, f"s3://{bucket}/{manifest_key}", "model manifest") from None
        manifest = Manifest.from_json(text, source=f"s3://{bucket}/{manifest_key}")
        prefix = PurePosixPath(manifest_key).parent
        fmt = backends.FORMAT_OF.get(self.config.backend)
        if fmt is None:
            raise ModelError(f"RCYC_BACKEND={self.config.backend!r} is not one of {', '.join(backends.BACKENDS)}")
        paths = [self._fetch_file(bucket, f"{prefix}/{ref.path}", ref.sha256, fmt) for ref in manifest.files(fmt)]
        return Classifier(manifest, backends.open_paths(self.config.backend, paths))

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
                try:
                    body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
                    for chunk in iter(lambda: body.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                except Exception as exc:
                    raise _s3_error(exc, f"s3://{bucket}/{key}", "model file") from None
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


def _s3_error(exc: Exception, where: str, what: str) -> RcycError:
    code = client_error_code(exc)
    if code in ("NoSuchKey", "404", "NoSuchBucket"):
        return ModelError(f"the {what} {where} does not exist", kind="ModelUnavailable", hint="Run rcyc upload-model.")
    if code:
        return AwsError(f"S3 refused to read the {what} {where}: {code}", kind=code)
    return AwsError(f"cannot reach S3 for the {what} {where}: {type(exc).__name__}", kind="S3Unreachable")


class Function:
    def __init__(self, config: Config | None = None, s3=None):
        self.config = config or Config.from_env()
        self.s3 = s3 or make_s3_client(self.config.fetch_workers)
        self.store = ModelStore(self.s3, self.config)
        self.invocations = 0
        self._pool: ThreadPoolExecutor | None = None

    def handle(self, event: object, context: object = None) -> dict:
        started = time.perf_counter()
        self.invocations += 1
        response = empty_response(None)
        if isinstance(event, dict) and event.get("warmup") is True and "Records" not in event:
            # A warm-up ping (rcyc local up): load the model now so the first real request is warm.
            try:
                response["model"] = self.store.current().manifest.summary()
            except RcycError as exc:
                response["errors"].append(error_entry(None, None, None, exc.kind, exc.message))
            return self._finish(response, started)
        try:
            records = events.parse(event)
        except RcycError as exc:
            response["errors"].append(error_entry(None, None, None, exc.kind, exc.message))
            return self._finish(response, started)

        objects = []
        prefix = self.config.results_prefix
        for record in records:
            if prefix and isinstance(record, events.ObjectRecord) and record.key.startswith(prefix):
                # Our own output: classifying it would loop (a result triggering the function again).
                response["skipped"].append(skipped_entry(record.index, record.bucket, record.key, "a result, not an image"))
            elif isinstance(record, events.SkippedRecord):
                response["skipped"].append(skipped_entry(record.index, record.bucket, record.key, record.reason))
            elif isinstance(record, events.BadRecord):
                response["errors"].append(error_entry(record.index, record.bucket, record.key, "InvalidRecord", record.message))
            else:
                objects.append(record)
        if objects:
            self._classify(objects, response)
        for entries in response.values():
            if isinstance(entries, list):
                entries.sort(key=lambda entry: entry["record"])
        if prefix and objects:
            self._write_results(response, prefix)
        return self._finish(response, started)

    def _write_results(self, response: dict, prefix: str) -> None:
        """One JSON object per classified record under the results prefix. A failed write is logged, never
        raised: the invocation's own answer still carries every result."""
        for entry in response["results"] + response["errors"]:
            if not entry.get("bucket") or not entry.get("key"):
                continue
            body = json.dumps({**entry, "model": response["model"]}).encode()
            try:
                self.s3.put_object(Bucket=entry["bucket"], Key=f"{prefix}{entry['key']}.json", Body=body,
                                   ContentType="application/json")
            except Exception as exc:
                log("result_write_failed", key=entry["key"], error=client_error_code(exc) or type(exc).__name__)

    def _classify(self, objects: list[events.ObjectRecord], response: dict) -> None:
        try:
            classifier = self.store.current()
        except RcycError as exc:
            for record in objects:
                response["errors"].append(error_entry(record.index, record.bucket, record.key, exc.kind, exc.message))
            return
        response["model"] = classifier.manifest.summary()
        items = []
        # Fetch in parallel (per-record latency is mostly waiting on S3) with threads kept for the instance's
        # life; a single record is fetched inline, with no thread hand-off at all.
        fetched_all = map(self._fetch, objects) if len(objects) == 1 else self._fetch_pool().map(self._fetch, objects)
        for record, fetched in zip(objects, fetched_all):
            if isinstance(fetched, RcycError):
                response["errors"].append(error_entry(record.index, record.bucket, record.key, fetched.kind, fetched.message))
            else:
                items.append(Item(record.index, record.bucket, record.key, fetched))
        try:
            results, errors = classifier.classify(items, self.config.max_pixels)
        except Exception as exc:  # a backend failure costs this batch, never the instance
            log("inference_failed", error=type(exc).__name__, trace=traceback.format_exc(limit=3))
            results, errors = [], [error_entry(i.record, i.bucket, i.key, "InferenceError", str(exc)[:200]) for i in items]
        response["results"].extend(results)
        response["errors"].extend(errors)

    def _fetch_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.fetch_workers, thread_name_prefix="fetch")
        return self._pool

    def _fetch(self, record: events.ObjectRecord) -> bytes | RcycError:
        where = f"s3://{record.bucket}/{record.key}"
        try:
            obj = self.s3.get_object(Bucket=record.bucket, Key=record.key)
            if obj.get("ContentLength", 0) > self.config.max_bytes:
                obj["Body"].close()
                return RcycError(
                    f"{where} is {obj['ContentLength']:,} bytes, more than the limit of {self.config.max_bytes:,}",
                    kind="ImageTooLarge",
                )
            return obj["Body"].read()
        except Exception as exc:
            code = client_error_code(exc)
            if code in ("NoSuchKey", "404"):
                return RcycError(f"{where} does not exist", kind="NoSuchKey")
            if code:
                return RcycError(f"S3 refused {where}: {code}", kind=code)
            return RcycError(f"cannot fetch {where}: {type(exc).__name__}", kind="S3Unreachable")

    def _finish(self, response: dict, started: float) -> dict:
        log(
            "invoke",
            results=len(response["results"]),
            errors=len(response["errors"]),
            skipped=len(response["skipped"]),
            model=(response["model"] or {}).get("version"),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response


def log(event: str, **fields) -> None:
    """One JSON line per event on stdout (CloudWatch in AWS, the emulator's log locally)."""
    print(json.dumps({"rcyc": event, **fields}, default=str), file=sys.stdout, flush=True)


_instance: Function | None = None


def handler(event, context):
    """The Lambda entry point. Never raises: a bug costs this invocation's records, not the instance."""
    global _instance
    try:
        if _instance is None:
            _instance = Function()
        return _instance.handle(event, context)
    except Exception as exc:
        log("internal_error", error=type(exc).__name__, trace=traceback.format_exc(limit=5))
        message = f"{type(exc).__name__}: {exc}"[:300]
        response = empty_response(None)
        try:
            records = events.parse(event)
        except Exception:
            records = [None]
        for record in records:
            where = (record.index, record.bucket, record.key) if record else (None, None, None)
            response["errors"].append(error_entry(*where, "InternalError", message))
        return response
