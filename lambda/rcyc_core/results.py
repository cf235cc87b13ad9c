"""The result contract (README, "Result contract"): one entry per record, in event order, in exactly
one of results / errors / skipped. ``record`` is the entry's index in the event, so callers can put the
three lists back in event order. No numpy here: the CLI's warm path imports this module."""

from __future__ import annotations

from typing import Sequence

from .labels import LABELS


def result_entry(record: int, bucket: str | None, key: str | None, scores: Sequence[float], raw: Sequence) -> dict:
    """One prediction. ``scores`` is this record's row of 5; ``raw`` its rows of each member's output."""
    values = [float(x) for x in scores]
    top = max(range(len(values)), key=values.__getitem__)  # the first of equal maxima, as numpy's argmax
    raw_rows = [[float(x) for x in row] for row in raw]
    return {
        "record": record,
        "bucket": bucket,
        "key": key,
        "label": LABELS[top],
        "confidence": values[top],
        "scores": dict(zip(LABELS, values)),
        "raw": raw_rows[0] if len(raw_rows) == 1 else raw_rows,
    }


def error_entry(record: int | None, bucket: str | None, key: str | None, kind: str, message: str) -> dict:
    return {"record": record, "bucket": bucket, "key": key, "error": kind, "message": message}


def skipped_entry(record: int, bucket: str | None, key: str | None, reason: str) -> dict:
    return {"record": record, "bucket": bucket, "key": key, "reason": reason}


def empty_response(model: dict | None) -> dict:
    return {"results": [], "errors": [], "skipped": [], "model": model}
