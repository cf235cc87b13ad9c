"""A pool of function instances, and spreading many images over it.

One emulator serves one request at a time (as one Lambda sandbox does), so concurrency means several
instances: a request takes an idle instance and gives it back when answered. An instance whose emulator
died is replaced and the request retried once on the replacement, so a crash loses no record.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from rcyc_core import events
from rcyc_core.errors import FunctionError
from rcyc_core.results import error_entry

from ...defaults import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY
from ...invocation import Invocation
from .sandbox import Sandbox


@dataclass
class Instance:
    index: int
    sandbox: Sandbox
    invocations: int = 0
    cold_start_ms: float | None = None  # instance start -> first answer
    model: dict | None = None
    restarts: int = 0

    def to_dict(self) -> dict:
        sandbox = self.sandbox
        return {"instance": self.index, "runtime": sandbox.runtime, "endpoint": sandbox.endpoint_url,
                "invocations": self.invocations, "cold_start_ms": self.cold_start_ms, "restarts": self.restarts,
                "model": self.model}


class Pool:
    def __init__(self, factory: Callable[[int], Sandbox], size: int):
        self.factory, self.size = factory, size
        self.instances: list[Instance] = []
        self._idle: queue.Queue[Instance] = queue.Queue()
        self._lock = threading.Lock()
        self._stopped = False  # once stopped, no instance is ever started or replaced again

    def start(self, warm: bool = True) -> "Pool":
        """Start every instance; with ``warm``, ping each once so its model is loaded before real work."""
        with self._lock:
            if self._stopped:
                raise FunctionError("the pool was stopped before it started", kind="EmulatorError")
            for index in range(self.size):
                self.instances.append(Instance(index, self.factory(index)))
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            list(pool.map(lambda instance: self._boot(instance, warm), self.instances))
        for instance in self.instances:
            self._idle.put(instance)
        return self

    def _boot(self, instance: Instance, warm: bool) -> None:
        started = time.perf_counter()
        instance.sandbox.start()
        if warm:
            answer = instance.sandbox.invoke({"warmup": True})
            instance.cold_start_ms = round((time.perf_counter() - started) * 1000, 1)
            instance.model = answer.response.get("model") if isinstance(answer.response, dict) else None

    def invoke(self, event: object) -> tuple[Invocation, Instance]:
        instance = self._idle.get()
        try:
            try:
                answer = instance.sandbox.invoke(event)
            except FunctionError as exc:
                if exc.kind != "EmulatorError" or self._alive(instance):
                    raise
                self._replace(instance)  # the emulator crashed: a fresh instance gets the same request once
                answer = instance.sandbox.invoke(event)
            instance.invocations += 1
            if isinstance(answer.response, dict) and answer.response.get("model"):
                instance.model = answer.response["model"]
            return answer, instance
        finally:
            self._idle.put(instance)

    @staticmethod
    def _alive(instance: Instance) -> bool:
        return instance.sandbox.alive()

    def _replace(self, instance: Instance) -> None:
        """A fresh sandbox for a dead one (process or container alike); never once the pool is stopped."""
        with self._lock:
            if self._stopped:
                raise FunctionError("the function instances were stopped", kind="EmulatorError")
            instance.sandbox.stop()
            instance.sandbox = self.factory(instance.index)
            instance.restarts += 1
        try:
            self._boot(instance, warm=False)
        finally:
            if self._stopped:  # stopped while this one booted: it goes too
                instance.sandbox.stop()
        if self._stopped:
            raise FunctionError("the function instances were stopped", kind="EmulatorError")

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            sandboxes = [instance.sandbox for instance in self.instances]
        for sandbox in sandboxes:
            sandbox.stop()


@dataclass
class BatchRun:
    response: dict
    invocations: list[Invocation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        done = len(self.response["results"]) + len(self.response["errors"])
        return done / self.seconds if self.seconds else 0.0


def event_sizes(count: int, batch_size: int, concurrency: int) -> list[int]:
    """The record counts of the events ``count`` keys go out as: as few events of up to ``batch_size`` as
    there can be, made a whole number of rounds over the ``concurrency`` instances where there are keys
    enough, and even (sizes differ by one at most). 72 keys in events of 16 over 2 instances were
    16+16+16+16+8: one instance classified 40 while the other waited after 32; now six of 12."""
    if count <= 0:
        return []
    events = -(-count // max(1, batch_size))
    rounds = -(-events // max(1, concurrency))
    events = min(count, rounds * max(1, concurrency))
    return [count // events + (1 if i < count % events else 0) for i in range(events)]


def run_keys(invoke: Callable[[dict], Invocation], bucket: str, keys: list[str], batch_size: int = DEFAULT_BATCH_SIZE,
             concurrency: int = DEFAULT_CONCURRENCY, on_done: Callable[[int], None] = lambda n: None) -> BatchRun:
    """Classify ``keys`` as events of up to ``batch_size`` records, ``concurrency`` events at a time.

    The merged response keeps the result contract: every key once, ``record`` = its index in ``keys``.
    """
    sizes = event_sizes(len(keys), batch_size, concurrency)
    starts = [0, *itertools.accumulate(sizes)][:len(sizes)]
    chunks = [keys[start:start + size] for start, size in zip(starts, sizes)]
    merged = {"results": [], "errors": [], "skipped": [], "model": None}
    invocations: list[Invocation] = []
    started = time.perf_counter()

    def one(offset_chunk: tuple[int, list[str]]) -> tuple[int, list[str], Invocation | FunctionError]:
        offset, chunk = offset_chunk
        try:
            answer = invoke(events.make_event(bucket, chunk))
        except FunctionError as exc:
            if len(chunks) == 1:
                raise  # the only event: the function's failure is the answer (exit 6, with its log)
            answer = exc  # one of many events failed as a whole: its records become errors, the others go on
        on_done(len(chunk))
        return offset, chunk, answer

    offsets = list(zip(starts, chunks))
    executor = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        for offset, chunk, answer in executor.map(one, offsets):
            if isinstance(answer, FunctionError):
                # each record carries the event's error, cut as the function cuts its own (the message may be
                # the function's megabytes, and a copy per record multiplies them)
                message = answer.message[:300]
                merged["errors"] += [error_entry(offset + i, bucket, key, answer.kind, message) for i, key in enumerate(chunk)]
                continue
            invocations.append(answer)
            for name in ("results", "errors", "skipped"):
                for entry in answer.response.get(name, []):
                    merged[name].append({**entry, "record": None if entry.get("record") is None else entry["record"] + offset})
            merged["model"] = answer.response.get("model") or merged["model"]
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or failed: events not yet posted are never posted; the ones in
        # flight end when the caller stops the instances.
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()
    for name in ("results", "errors", "skipped"):
        merged[name].sort(key=lambda entry: -1 if entry["record"] is None else entry["record"])
    return BatchRun(merged, invocations, time.perf_counter() - started)
