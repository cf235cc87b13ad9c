"""The Lambda function: S3 event in, result contract out.

One ``Function`` per function instance (module global): the S3 client and the model store are built once
and reused by every warm invocation.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from . import events
from .config import Config
from .errors import RcycError
from .inference import CHUNK_RECORDS, Item
from .log import log
from .model_store import ModelStore
from .result_store import write_result
from .results import empty_response, error_entry, skipped_entry
from .s3 import client_error_code, make_s3_client, object_read_error


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
            try:
                write_result(self.s3, entry["bucket"], prefix, entry, response["model"])
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
        # Bounded chunks: at most CHUNK_RECORDS images (their bytes and their model inputs) are in memory at
        # once, so memory stays flat whatever the record count; each chunk is one backend batch.
        for start in range(0, len(objects), CHUNK_RECORDS):
            self._classify_chunk(classifier, objects[start:start + CHUNK_RECORDS], response)

    def _classify_chunk(self, classifier, objects: list[events.ObjectRecord], response: dict) -> None:
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
            return object_read_error(exc, where)

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
