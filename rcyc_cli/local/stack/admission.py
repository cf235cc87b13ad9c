"""Who gets served now: the admission limit (instances plus a bounded wait queue, else 429), the queue of
Event (asynchronous) invocations, and the opt-in fault switch that answers with 429 or a 5xx on request."""


from __future__ import annotations

import queue
import random
import threading
from typing import Callable


from .errors import invalid_content
from .protocol import FAULT_STATUSES


class FaultSwitch:
    """Answers the next ``next`` invokes, then a ``fraction`` of them, with ``status`` (429, 500, 502, 503).
    Off until configured; ``{"next": 0, "fraction": 0}`` switches it off."""

    def __init__(self):
        self._lock = threading.Lock()
        self.remaining, self.fraction, self.status, self.injected = 0, 0.0, 429, 0
        self._random = random.Random()

    def configure(self, spec: object) -> dict:
        if not isinstance(spec, dict) or set(spec) - {"next", "status", "fraction", "seed"}:
            raise invalid_content('a fault spec is {"next": N, "status": 429|500|502|503, "fraction": 0.0-1.0}')
        remaining, fraction, status = spec.get("next", 0), spec.get("fraction", 0.0), spec.get("status", 429)
        if type(remaining) is not int or not 0 <= remaining <= 1_000_000:
            raise invalid_content("next must be an integer from 0 to 1000000")
        if type(fraction) not in (int, float) or not 0.0 <= fraction <= 1.0:
            raise invalid_content("fraction must be a number from 0.0 to 1.0")
        if status not in FAULT_STATUSES or type(status) is not int:
            raise invalid_content(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}")
        if "seed" in spec and type(spec["seed"]) not in (int, str):
            raise invalid_content("seed must be an integer or a string")
        with self._lock:
            self.remaining, self.fraction, self.status = remaining, float(fraction), status
            if "seed" in spec:
                self._random.seed(spec["seed"])
        return self.to_dict()

    def take(self) -> int | None:
        """The status to answer this invoke with, or None to serve it."""
        with self._lock:
            if self.remaining > 0:
                self.remaining -= 1
            elif not (self.fraction and self._random.random() < self.fraction):
                return None
            self.injected += 1
            return self.status

    def to_dict(self) -> dict:
        with self._lock:
            return {"next": self.remaining, "status": self.status, "fraction": self.fraction, "injected": self.injected}


class Admission:
    """At most ``instances + waiting`` invocations in the stack at once (running or waiting for an idle
    instance); a synchronous invoke beyond that is refused at once with 429, as Lambda throttles."""

    def __init__(self, instances: int, waiting: int):
        self.capacity = instances + waiting
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self.in_use = 0

    def _count(self, step: int) -> None:
        with self._lock:
            self.in_use += step

    def try_enter(self) -> bool:
        if self._slots.acquire(blocking=False):
            self._count(1)
            return True
        return False

    def enter(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._slots.acquire(timeout=0.2):
                self._count(1)
                return True
        return False

    def leave(self) -> None:
        self._count(-1)
        self._slots.release()


class RunAdmission:
    """Whole runs (``/rcyc/runs``, invoke-local's images as bytes) in the stack at once: at most ``runs`` of
    them and ``budget`` bytes of their bodies together, counted from Content-Length before a byte is read.
    Beyond either, 429 at once, as Lambda throttles; one body over the per-run limit is 413. So memory is
    bounded by the budget whatever the clients send (four 256 MB runs at once once peaked at 3.7 GB)."""

    def __init__(self, runs: int, budget: int):
        self.runs, self.budget = runs, budget
        self._lock = threading.Lock()
        self.in_use = 0  # runs in the stack now (the idle stop waits for them)
        self.bytes = 0

    def try_enter(self, size: int) -> bool:
        with self._lock:
            if self.in_use >= self.runs or (self.in_use and self.bytes + size > self.budget):
                return False
            self.in_use += 1
            self.bytes += size
            return True

    def leave(self, size: int) -> None:
        with self._lock:
            self.in_use -= 1
            self.bytes -= size

    def to_dict(self) -> dict:
        with self._lock:
            return {"in_flight": self.in_use, "bytes": self.bytes, "max_runs": self.runs, "max_bytes": self.budget}


class EventQueue:
    """Asynchronous (``Event``) invocations: a bounded queue run on the pool by a few worker threads."""

    def __init__(self, invoke: Callable[[object], object], admission: Admission, size: int, workers: int):
        self._invoke, self._admission = invoke, admission
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.counts = {"accepted": 0, "succeeded": 0, "failed": 0}
        self.size = size
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"event-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, event: object) -> bool:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            return False
        self._count("accepted")
        return True

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self._admission.enter(self._stop):
                return
            try:
                self._invoke(event)
                self._count("succeeded")
            except Exception as exc:  # an async invocation's failure is counted and logged, as Lambda would
                self._count("failed")
                print(f"event invocation failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            finally:
                self._admission.leave()

    def to_dict(self) -> dict:
        with self._lock:
            return {**self.counts, "queued": self._queue.qsize(), "queue_size": self.size}

    def stop(self) -> None:
        self._stop.set()

