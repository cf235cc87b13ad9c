"""S3 event parsing: the seed's short form and the full AWS S3 notification form, any number of records,
also as they reach a function through SNS or SQS (each wrapped S3 record becomes a record of its own;
``record`` is the index in that flattened list).

Top-level problems (not an object, no Records list) raise EventError; a problem with one record only
makes that record an error or a skip, never costs the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from .errors import EventError

MAX_KEY_BYTES = 1024  # S3's own limit on object key length


@dataclass(frozen=True)
class ObjectRecord:
    """An object-created record: classify bucket/key."""

    index: int
    bucket: str
    key: str  # decoded


@dataclass(frozen=True)
class SkippedRecord:
    index: int
    bucket: str | None
    key: str | None
    reason: str


@dataclass(frozen=True)
class BadRecord:
    index: int
    bucket: str | None
    key: str | None
    message: str


Record = ObjectRecord | SkippedRecord | BadRecord


def parse(event: object) -> list[Record]:
    if not isinstance(event, dict):
        raise EventError(f"the event must be a JSON object, not {type(event).__name__}")
    records = event.get("Records")
    if records is None:
        raise EventError("the event has no Records")
    if not isinstance(records, list):
        raise EventError(f"Records must be a list, not {type(records).__name__}")
    parsed: list[Record] = []
    for record in records:
        for inner in unwrap(record):
            parsed.append(parse_record(len(parsed), inner) if not isinstance(inner, _Refused) else inner.at(len(parsed)))
    return parsed


MAX_WRAPPING = 2  # S3 -> SNS -> SQS is the deepest real delivery path


@dataclass(frozen=True)
class _Refused:
    """A wrapped record that cannot be unwrapped (its message is not JSON, or holds no S3 records)."""

    skip: bool
    message: str

    def at(self, index: int) -> Record:
        return SkippedRecord(index, None, None, self.message) if self.skip else BadRecord(index, None, None, self.message)


def unwrap(record: object, depth: int = 0) -> list:
    """The S3 records inside an SNS- or SQS-delivered record (an S3 notification published to SNS, queued
    in SQS, or both); any other record as it is. Each inner S3 record becomes a record of its own."""
    if not isinstance(record, dict):
        return [record]
    source = record.get("eventSource", record.get("EventSource"))
    if source == "aws:sqs":
        message, via = record.get("body"), "SQS body"
    elif source == "aws:sns":
        sns = record.get("Sns")
        message, via = (sns.get("Message") if isinstance(sns, dict) else None), "SNS message"
    else:
        return [record]
    if depth >= MAX_WRAPPING:
        return [_Refused(False, f"{via} wrapped more than {MAX_WRAPPING} deep")]
    if not isinstance(message, str):
        return [_Refused(True, f"not an S3 event (eventSource {source!r} without a {via} string)")]
    try:
        inner = json.loads(message)
    except (ValueError, RecursionError):
        return [_Refused(True, f"not an S3 event ({via} is not JSON)")]
    if isinstance(inner, dict) and inner.get("Type") == "Notification" and isinstance(inner.get("Message"), str):
        # SNS delivered to SQS without raw message delivery: the S3 event is the envelope's Message.
        return unwrap({"EventSource": "aws:sns", "Sns": inner}, depth + 1)
    if isinstance(inner, dict) and inner.get("Event") == "s3:TestEvent":
        return [_Refused(True, "an s3:TestEvent (sent when a notification is configured), not an object")]
    if not (isinstance(inner, dict) and isinstance(inner.get("Records"), list)):
        return [_Refused(True, f"not an S3 event ({via} holds no Records)")]
    return [item for inner_record in inner["Records"] for item in unwrap(inner_record, depth + 1)]


def parse_record(index: int, record: object) -> Record:
    if not isinstance(record, dict):
        return BadRecord(index, None, None, f"record must be an object, not {type(record).__name__}")
    s3 = record.get("s3")
    bucket_obj = s3.get("bucket") if isinstance(s3, dict) else None
    object_obj = s3.get("object") if isinstance(s3, dict) else None
    bucket = bucket_obj.get("name") if isinstance(bucket_obj, dict) else None
    raw_key = object_obj.get("key") if isinstance(object_obj, dict) else None
    bucket = bucket if isinstance(bucket, str) else None
    key = unquote_plus(raw_key) if isinstance(raw_key, str) else None

    # Other event sources (SQS, SNS, ...) and other S3 events (deletes, restores) are not ours to classify.
    source = record.get("eventSource")
    if source is not None and source != "aws:s3":
        return SkippedRecord(index, bucket, key, f"not an S3 event (eventSource {str(source)[:64]!r})")
    name = record.get("eventName")
    if name is not None and not (isinstance(name, str) and name.startswith("ObjectCreated")):
        return SkippedRecord(index, bucket, key, f"not an object-created event (eventName {str(name)[:64]!r})")

    if not isinstance(s3, dict):
        return BadRecord(index, None, None, "record has no s3 object")
    if not bucket:
        return BadRecord(index, None, key, "record has no s3.bucket.name string")
    if not key:
        return BadRecord(index, bucket, None, "record has no s3.object.key string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return BadRecord(index, bucket, key[:64] + "…", f"object key longer than {MAX_KEY_BYTES} bytes")
    return ObjectRecord(index, bucket, key)


def make_event(bucket: str, keys: list[str]) -> dict:
    """The full AWS form of an object-created event for these keys (keys URL-encoded as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
            }
            for key in keys
        ]
    }
