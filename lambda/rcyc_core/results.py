"""The result contract (README, "Result contract"): one entry per record, in event order, in exactly
one of results / errors / skipped. ``record`` is the entry's index in the event, so callers can put the
three lists back in event order. The types below are the contract; the builders return their JSON, which
is what the function returns. No numpy here: the CLI's warm path imports this module."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from .labels import LABELS


@dataclass(frozen=True)
class Result:
    """One prediction: the top label, its confidence, the five scores, and the model's raw outputs."""

    record: int
    bucket: str | None
    key: str | None
    label: str
    confidence: float
    scores: dict[str, float]
    raw: list  # one array of 5 (softmax), or five arrays of 2 (one-vs-rest)

    def to_json(self) -> dict:
        return _json(self)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class RecordError:
    """A record that got no prediction: ``error`` is a short type (README), ``message`` says why."""

    record: int | None  # None: the whole event (InvalidEvent)
    bucket: str | None
    key: str | None
    error: str
    message: str

    def to_json(self) -> dict:
        return _json(self)

    @classmethod
    def from_json(cls, data: dict) -> RecordError:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Skipped:
    """A record that is not for the function (not an object-created event, a result object)."""

    record: int
    bucket: str | None
    key: str | None
    reason: str

    def to_json(self) -> dict:
        return _json(self)

    @classmethod
    def from_json(cls, data: dict) -> Skipped:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class ModelRef:
    """The model that answered."""

    name: str
    version: str
    sha256: str

    def to_json(self) -> dict:
        return _json(self)

    @classmethod
    def from_json(cls, data: dict | None) -> ModelRef | None:
        return None if data is None else cls(**_known(cls, data))


@dataclass(frozen=True)
class Response:
    """What the function returns: every record in exactly one of ``results``, ``errors``, ``skipped``."""

    results: tuple[Result, ...] = ()
    errors: tuple[RecordError, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    model: ModelRef | None = None

    def to_json(self) -> dict:
        return {"results": [r.to_json() for r in self.results], "errors": [e.to_json() for e in self.errors],
                "skipped": [s.to_json() for s in self.skipped], "model": self.model.to_json() if self.model else None}

    @classmethod
    def from_json(cls, data: dict) -> Response:
        """The contract's part of ``data`` (commands add keys beside it: ``backend``, ``invocation``)."""
        return cls(tuple(map(Result.from_json, data.get("results", []))), tuple(map(RecordError.from_json, data.get("errors", []))),
                   tuple(map(Skipped.from_json, data.get("skipped", []))), ModelRef.from_json(data.get("model")))


def _json(entry) -> dict:
    return {f.name: getattr(entry, f.name) for f in fields(entry)}  # shallow: no copy of the scores and raw rows


def _known(cls, data: dict) -> dict:
    # Keys the contract does not name are left out; one it names but the JSON lacks (an older function) is None.
    return {f.name: data.get(f.name) for f in fields(cls)}


def result_entry(record: int, bucket: str | None, key: str | None, scores: Sequence[float], raw: Sequence) -> dict:
    """One prediction. ``scores`` is this record's row of 5; ``raw`` its rows of each member's output."""
    values = [float(x) for x in scores]
    top = max(range(len(values)), key=values.__getitem__)  # the first of equal maxima, as numpy's argmax
    raw_rows = [[float(x) for x in row] for row in raw]
    return Result(record, bucket, key, LABELS[top], values[top], dict(zip(LABELS, values)),
                  raw_rows[0] if len(raw_rows) == 1 else raw_rows).to_json()


def error_entry(record: int | None, bucket: str | None, key: str | None, kind: str, message: str) -> dict:
    return RecordError(record, bucket, key, kind, message).to_json()


def skipped_entry(record: int, bucket: str | None, key: str | None, reason: str) -> dict:
    return Skipped(record, bucket, key, reason).to_json()


def empty_response(model: dict | None) -> dict:
    return {"results": [], "errors": [], "skipped": [], "model": model}
