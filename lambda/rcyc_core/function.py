"""The Lambda function: any delivery of uploads in (``events``), the answer its source expects out
(``answers``); with a results prefix, each result stored once per object version and model.

One ``Function`` per function instance (module global): the S3 client and the model store are built once
and reused by every warm invocation.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import answers, events
from .config import Config
from .errors import RcycError
from .inference import CHUNK_RECORDS, Item
from .log import log
from .model_store import ModelStore
from .result_store import read_result, reusable, stored_entry, write_result
from .results import empty_response, error_entry, skipped_entry
from .s3 import NOT_MODIFIED_CODES, client_error_code, make_s3_client, object_read_error

# An image that decodes to more pixels than this is decoded on the instance's one large-image thread rather
# than in its fetching thread: memory a thread frees stays in that thread's malloc arena, so eight fetching
# threads that each once decoded a 36-megapixel PNG (1 MB of file, 700 MB while decoding) kept 5.6 GB in a
# 1 GB function, even one at a time. Photos (JPEGs decode at their draft scale) stay under it.
LARGE_DECODE_PIXELS = 1_000_000


@dataclass
class Fetched:
    body: bytes
    version: dict  # {"etag", "version_id"} of the bytes read: what a stored result is for
    prepared: object = None  # the model input (or the record's error entry, or the batch's failure)


@dataclass
class Reused:
    document: dict  # the stored result for this object version and model: nothing is redone


class Function:
    def __init__(self, config: Config | None = None, s3=None):
        self.config = config or Config.from_env()
        self.s3 = s3 or make_s3_client(self.config.fetch_workers)
        self.store = ModelStore(self.s3, self.config)
        self.invocations = 0
        self._pool: ThreadPoolExecutor | None = None
        # its thread starts at its first image; made here, so that two fetching threads never make two
        self._large = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-large")

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
            delivery = events.read(event)
        except RcycError as exc:
            response["errors"].append(error_entry(None, None, None, exc.kind, exc.message))
            return self._finish(answers.answer(None, response), started)
        records = delivery.records

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
        reused = self._classify(objects, response) if objects else 0
        for entries in response.values():
            if isinstance(entries, list):
                entries.sort(key=lambda entry: entry["record"])
        return self._finish(answers.answer(delivery, response), started, reused)

    def _write_results(self, entries: list[dict], versions: dict[int, dict], model: dict | None) -> None:
        """One JSON object per record classified now (a result, or a permanent error) under the results
        prefix. A transient error is not stored (a retry must try again). A failed write is logged, never
        raised: the invocation's own answer still carries every result."""
        for entry in entries:
            lasting = "label" in entry or not answers.retryable(entry.get("error"))
            if not entry.get("bucket") or not entry.get("key") or not lasting:
                continue
            try:
                write_result(self.s3, entry["bucket"], self.config.results_prefix, entry, model, versions.get(entry["record"]))
            except Exception as exc:
                log("result_write_failed", key=entry["key"], error=client_error_code(exc) or type(exc).__name__)

    def _classify(self, objects: list[events.ObjectRecord], response: dict) -> int:
        """Classify the objects into ``response``; returns how many stored results were reused."""
        try:
            classifier = self.store.current()
        except RcycError as exc:
            for record in objects:
                response["errors"].append(error_entry(record.index, record.bucket, record.key, exc.kind, exc.message))
            return 0
        response["model"] = classifier.manifest.summary()
        # Bounded chunks: at most CHUNK_RECORDS images (their bytes and their model inputs) are in memory at
        # once, so memory stays flat whatever the record count; each chunk is one backend batch.
        return sum(self._classify_chunk(classifier, objects[start:start + CHUNK_RECORDS], response)
                   for start in range(0, len(objects), CHUNK_RECORDS))

    def _classify_chunk(self, classifier, objects: list[events.ObjectRecord], response: dict) -> int:
        items, versions, unfetched, reused = [], {}, [], 0
        sha256 = classifier.manifest.sha256

        def fetch(record):
            fetched = self._fetch(record, sha256)
            if isinstance(fetched, Fetched):
                # Decoded in the fetching thread, as soon as its bytes are here: the image is ready while
                # the other records are still on their way (Pillow's decoding lets the other threads run).
                item = Item(record.index, record.bucket, record.key, fetched.body)
                try:
                    fetched.prepared = self._prepare(classifier, item)
                except Exception as exc:  # not an image error: the batch's failure, as the backend's would be
                    fetched.prepared = exc
            return fetched

        # Fetch in parallel (per-record latency is mostly waiting on S3) with threads kept for the instance's
        # life; a single record is fetched inline, with no thread hand-off at all.
        fetched_all = map(fetch, objects) if len(objects) == 1 else self._fetch_pool().map(fetch, objects)
        prepared = []
        for record, fetched in zip(objects, fetched_all):
            if isinstance(fetched, RcycError):
                unfetched.append(error_entry(record.index, record.bucket, record.key, fetched.kind, fetched.message))
            elif isinstance(fetched, Reused):
                entry = stored_entry(fetched.document, record.index)
                response["results" if "label" in entry else "errors"].append(entry)
                reused += 1
            else:
                item = Item(record.index, record.bucket, record.key, fetched.body)
                items.append(item)
                prepared.append((item, fetched.prepared))
                versions[record.index] = fetched.version
        try:
            failure = next((p for _item, p in prepared if isinstance(p, Exception)), None)
            if failure is not None:
                raise failure
            results, errors = classifier.classify_prepared(prepared)
        except Exception as exc:  # a backend failure costs this batch, never the instance
            log("inference_failed", error=type(exc).__name__, trace=traceback.format_exc(limit=3))
            results, errors = [], [error_entry(i.record, i.bucket, i.key, "InferenceError", str(exc)[:200]) for i in items]
        errors = unfetched + errors
        response["results"].extend(results)
        response["errors"].extend(errors)
        if self.config.results_prefix:
            self._write_results(results + errors, versions, response["model"])
        return reused

    def _prepare(self, classifier, item: Item):
        """classifier.prepare, a large image on the one large-image thread (LARGE_DECODE_PIXELS)."""
        if classifier.decoded_pixels(item, self.config.max_pixels) <= LARGE_DECODE_PIXELS:
            return classifier.prepare(item, self.config.max_pixels)
        return self._large.submit(classifier.prepare, item, self.config.max_pixels).result()

    def _fetch_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.fetch_workers, thread_name_prefix="fetch")
        return self._pool

    def _stored(self, record: events.ObjectRecord, sha256: str) -> tuple[dict | None, bool | None]:
        """The stored result of this object for this model (results prefix only), and whether it answers
        the event's object version (None: the event names none, ask S3)."""
        if not self.config.results_prefix or record.key.startswith(self.config.results_prefix):
            return None, False
        try:
            document = read_result(self.s3, record.bucket, self.config.results_prefix, record.key)
        except Exception as exc:  # unreadable: classify again rather than fail the record
            log("result_read_failed", key=record.key, error=client_error_code(exc) or type(exc).__name__)
            return None, False
        return document, reusable(document, sha256, record.etag, record.version_id)

    def _fetch(self, record: events.ObjectRecord, sha256: str = "") -> Fetched | Reused | RcycError:
        where = f"s3://{record.bucket}/{record.key}"
        document, reuse = self._stored(record, sha256)
        if reuse:
            return Reused(document)
        # The event names no version: fetch only if the object changed since its stored result.
        condition = {"IfNoneMatch": f'"{document["object"]["etag"]}"'} if reuse is None else {}
        try:
            obj = self.s3.get_object(Bucket=record.bucket, Key=record.key, **condition)
            if obj.get("ContentLength", 0) > self.config.max_bytes:
                obj["Body"].close()
                return RcycError(
                    f"{where} is {obj['ContentLength']:,} bytes, more than the limit of {self.config.max_bytes:,}",
                    kind="ImageTooLarge",
                )
            version = {"etag": (obj.get("ETag") or "").strip('"') or None, "version_id": obj.get("VersionId")}
            return Fetched(obj["Body"].read(), {k: v for k, v in version.items() if v})
        except Exception as exc:
            if condition and client_error_code(exc) in NOT_MODIFIED_CODES:
                return Reused(document)
            return object_read_error(exc, where)

    def _finish(self, response: dict, started: float, reused: int = 0) -> dict:
        log(
            "invoke",
            results=len(response["results"]),
            errors=len(response["errors"]),
            skipped=len(response["skipped"]),
            reused=reused,
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
            delivery = events.read(event)
        except Exception:
            delivery = None
        for record in delivery.records if delivery else [None]:
            where = (record.index, record.bucket, record.key) if record else (None, None, None)
            response["errors"].append(error_entry(*where, "InternalError", message))
        return answers.answer(delivery, response)
