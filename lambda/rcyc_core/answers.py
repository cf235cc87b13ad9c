"""The answer each event source expects, from one invocation's outcome (the result document).

- Direct invocations, S3, SNS and EventBridge: the result document itself (README, "Result contract").
  Asynchronous sources ignore it; every record's outcome is also in its stored result.
- SQS with ``ReportBatchItemFailures``: the result document plus ``batchItemFailures`` naming exactly the
  messages worth retrying. A message whose records all succeeded, were skipped, or failed for good (the
  image itself is broken, the object is gone) is acknowledged: retrying it would only repeat the failure,
  and the good images of its batch would be classified again.

Each error entry says whether it is ``retryable``: a permanent failure is a property of the record or its
object; anything else (S3 unreachable or refusing, the model unavailable, throttling, a bug) may pass.
"""

from __future__ import annotations

from .events import Delivery

# Errors that say something about the image's bytes themselves: the same bytes fail the same way again
# (rcyc classify stores these as results; a rerun skips them until the bytes change).
IMAGE_ERRORS = frozenset({"NotAnImage", "EmptyImage", "CorruptImage", "ImageTooLarge", "InvalidImage"})
# Errors that say something about the record or the image itself: retrying the record fails again.
PERMANENT_ERRORS = IMAGE_ERRORS | {"InvalidRecord", "InvalidEvent", "NoSuchKey"}


def retryable(kind: str | None) -> bool:
    return kind not in PERMANENT_ERRORS


def answer(delivery: Delivery | None, response: dict) -> dict:
    """``response`` marked up for its source: ``retryable`` on each error, and for SQS the batch's answer."""
    for entry in response["errors"]:
        entry["retryable"] = retryable(entry.get("error"))
    if delivery is None or delivery.source != "sqs":
        return response
    carried_by = {record.index: record.message_id for record in delivery.records}
    failed = set()
    for entry in response["errors"]:
        if entry["retryable"]:
            message = carried_by.get(entry.get("record"))
            # An error of no record (the whole invocation failed), or of a record no message id names, costs
            # every message of the batch: retrying too much only repeats work, acknowledging it loses it.
            failed.update([message] if message is not None else delivery.messages)
    response["batchItemFailures"] = [{"itemIdentifier": m} for m in dict.fromkeys(delivery.messages) if m in failed]
    return response
