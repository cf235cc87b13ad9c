"""classify's result writer: results stored off the invoke path, so an invoking thread sends its next event
at once."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from rcyc_core.errors import RcycError
from rcyc_core.result_store import result_object, write_result

from ..cloud.aws import translate
from .resume import Resume
from .target import NoStoreRoute


class Writer:
    """Results written off the invoke path: a bounded pool of their own, so an invoking thread sends its next
    event at once. At most ``8 * workers`` writes wait; beyond that the invoking threads wait for them. The
    local stack takes an event's results in one request (``Target.store``); elsewhere each is one S3 PUT."""

    def __init__(self, s3, bucket: str, results_prefix: str, workers: int, resume: Resume | None, store=None):
        self.s3, self.bucket, self.results_prefix, self.resume, self.store = s3, bucket, results_prefix, resume, store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write")
        self._slots = threading.BoundedSemaphore(8 * workers)
        self.lost: list[str] = []  # keys classified whose result could not be stored
        self._lock = threading.Lock()

    def submit(self, entries: list[dict], model: dict | None, images: dict[str, str]) -> list[Future]:
        """``images``: key -> the ETag of the bytes classified, stored with each result."""
        entries = [{**entry, "object": {"etag": images.get(entry["key"]) or None}} for entry in entries]
        groups = [entries] if self.store is not None else [[entry] for entry in entries]
        futures = []
        for group in groups:
            self._slots.acquire()
            future = self._pool.submit(self._write, group, model)
            future.add_done_callback(lambda _: self._slots.release())
            futures.append(future)
        return futures

    def _write(self, entries: list[dict], model: dict | None) -> None:
        try:
            etags = self._store(entries, model) if self.store is not None else None
            if etags is None:
                etags = [write_result(self.s3, self.bucket, self.results_prefix, entry, model) for entry in entries]
        except Exception as exc:
            with self._lock:
                self.lost += [entry["key"] for entry in entries]
            if isinstance(exc, RcycError):
                raise
            raise translate(f"write the result of {entries[0]['key']}", exc) from None
        if self.resume is not None:
            for entry, etag in zip(entries, etags):
                self.resume.record(entry, model, etag)

    def _store(self, entries: list[dict], model: dict | None) -> list[str] | None:
        try:
            return self.store(self.bucket, [result_object(self.results_prefix, entry, model) for entry in entries])
        except NoStoreRoute:  # a stack started by an earlier rcyc: through S3, like anywhere else
            self.store = None
            return None

    def close(self) -> None:
        """Every result handed over is written (or counted lost), also on Ctrl-C or a failure: it was paid for."""
        self._pool.shutdown(wait=True)

    def lost_message(self) -> str | None:
        if not self.lost:
            return None
        examples = ", ".join(sorted(self.lost)[:3]) + (", ..." if len(self.lost) > 3 else "")
        return f"{len(self.lost)} classified results were not stored ({examples}); a rerun classifies them again"
