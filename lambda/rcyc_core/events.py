"""Every way an upload reaches the function, read into records to classify and records to skip (with why).

Shapes (docs/events.md has the table):

- S3 notification ``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": ...}]}``
  (also the seed's short form without eventSource/eventName). S3 URL-encodes keys here (a space is ``+``).
- S3 -> SNS -> Lambda: records with ``EventSource: aws:sns`` whose ``Sns.Message`` is an S3 notification.
- S3 -> SQS -> Lambda: records with ``eventSource: aws:sqs`` and a ``messageId``, whose ``body`` is an S3
  notification, an SNS envelope holding one (SNS -> SQS without raw delivery), an EventBridge event, or
  S3's ``s3:TestEvent``.
- S3 -> EventBridge -> Lambda: ``{"source": "aws.s3", "detail-type": "Object Created", "detail": ...}``,
  one object per event, its key NOT URL-encoded.
- S3's ``s3:TestEvent`` on its own.

Deletions and any other S3 event are skipped with their name, never fetched. Top-level problems (not an
object, no shape we know) raise EventError; a problem with one record only makes that record an error or
a skip, never costs the others. Records are numbered in delivery order, wrapped records flattened.

``make`` builds each shape (``rcyc event``, tests) and ``rebase`` points an event's objects elsewhere
(invoke-local: an event naming an uploaded file reaches this run's copy), so each shape lives only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote_plus, unquote_plus

from .config import DEFAULT_EVENT_REGION
from .errors import EventError, InputError

MAX_KEY_BYTES = 1024  # S3's own limit on object key length
MAX_WRAPPING = 2  # S3 -> SNS -> SQS is the deepest real delivery path
TEST_EVENT_REASON = "an s3:TestEvent (sent when a notification is configured), not an object"
SHAPES = ("s3", "sqs", "sns", "sns-sqs", "eventbridge", "s3-test")


@dataclass(frozen=True)
class ObjectRecord:
    """An object-created record: classify bucket/key (decoded)."""

    index: int
    bucket: str
    key: str
    etag: str | None = None  # as the event names it, without quotes
    version_id: str | None = None
    message_id: str | None = None  # the SQS message that carried it


@dataclass(frozen=True)
class SkippedRecord:
    index: int
    bucket: str | None
    key: str | None
    reason: str
    message_id: str | None = None


@dataclass(frozen=True)
class BadRecord:
    index: int
    bucket: str | None
    key: str | None
    message: str
    message_id: str | None = None


Record = ObjectRecord | SkippedRecord | BadRecord


@dataclass(frozen=True)
class Delivery:
    """What one invocation brought: its source (s3, sns, sqs, eventbridge, s3-test) and its records.
    ``messages`` lists the SQS message ids in order (an SQS answer names the ones to retry)."""

    source: str
    records: list[Record]
    messages: list[str] = field(default_factory=list)


def read(event: object) -> Delivery:
    if not isinstance(event, dict):
        raise EventError(f"the event must be a JSON object, not {type(event).__name__}")
    if _is_eventbridge(event):
        return Delivery("eventbridge", [_eventbridge_record(0, event)])
    if event.get("Event") == "s3:TestEvent":
        return Delivery("s3-test", [SkippedRecord(0, _str(event.get("Bucket")), None, TEST_EVENT_REASON)])
    records = event.get("Records")
    if records is None:
        raise EventError("the event has no Records (nor is it an EventBridge event or an s3:TestEvent)")
    if not isinstance(records, list):
        raise EventError(f"Records must be a list, not {type(records).__name__}")
    parsed: list[Record] = []
    messages: list[str] = []
    sources = set()
    for record in records:
        source = _source(record)
        sources.add(source)
        message_id = _str(record.get("messageId")) if source == "aws:sqs" else None  # "" names no message
        if message_id is not None:
            messages.append(message_id)
        for inner in _unwrap(record, 0):
            parsed.append(inner(len(parsed), message_id))
    # Lambda never mixes sources in one invocation; any SQS record means SQS expects the batch's answer.
    source = "sqs" if "aws:sqs" in sources else "sns" if sources == {"aws:sns"} else "s3"
    return Delivery(source, parsed, messages)


def parse(event: object) -> list[Record]:
    return read(event).records


# A record-to-be: called with its index in the flattened list and the SQS message that carried it.
_Pending = Callable[[int, "str | None"], Record]


def _source(record: object) -> object:
    return record.get("eventSource", record.get("EventSource")) if isinstance(record, dict) else None


def _unwrap(record: object, depth: int) -> list[_Pending]:
    """The records inside one delivered record: an SQS body or SNS message holds a whole S3 notification
    (each of its records becomes one), an EventBridge event or a test event; anything else is itself."""
    source = _source(record)
    if source == "aws:sqs":
        message, via = record.get("body"), "SQS body"
    elif source == "aws:sns":
        sns = record.get("Sns")
        message, via = (sns.get("Message") if isinstance(sns, dict) else None), "SNS message"
    else:
        return [lambda i, m: _s3_record(i, record, m)]
    if depth >= MAX_WRAPPING:
        return [_bad(f"{via} wrapped more than {MAX_WRAPPING} deep")]
    if not isinstance(message, str):
        return [_skip(f"not an S3 event (eventSource {source!r} without a {via} string)")]
    try:
        inner = json.loads(message)
    except (ValueError, RecursionError):
        return [_skip(f"not an S3 event ({via} is not JSON)")]
    if not isinstance(inner, dict):
        return [_skip(f"not an S3 event ({via} holds no Records)")]
    if inner.get("Type") == "Notification" and isinstance(inner.get("Message"), str):
        # SNS delivered to SQS without raw message delivery: the S3 event is the envelope's Message.
        return _unwrap({"EventSource": "aws:sns", "Sns": inner}, depth + 1)
    if inner.get("Event") == "s3:TestEvent":
        bucket = _str(inner.get("Bucket"))
        return [lambda i, m: SkippedRecord(i, bucket, None, TEST_EVENT_REASON, m)]
    if _is_eventbridge(inner):
        return [lambda i, m: _eventbridge_record(i, inner, m)]
    if not isinstance(inner.get("Records"), list):
        return [_skip(f"not an S3 event ({via} holds no Records)")]
    return [item for inner_record in inner["Records"] for item in _unwrap(inner_record, depth + 1)]


def _skip(reason: str) -> _Pending:
    return lambda i, m: SkippedRecord(i, None, None, reason, m)


def _bad(message: str) -> _Pending:
    return lambda i, m: BadRecord(i, None, None, message, m)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _s3_record(index: int, record: object, message_id: str | None = None) -> Record:
    if not isinstance(record, dict):
        return BadRecord(index, None, None, f"record must be an object, not {type(record).__name__}", message_id)
    s3 = record.get("s3")
    bucket_obj = s3.get("bucket") if isinstance(s3, dict) else None
    object_obj = s3.get("object") if isinstance(s3, dict) else None
    object_obj = object_obj if isinstance(object_obj, dict) else {}
    bucket = _str(bucket_obj.get("name")) if isinstance(bucket_obj, dict) else None
    raw_key = object_obj.get("key")
    key = unquote_plus(raw_key) if isinstance(raw_key, str) else None  # S3 notifications URL-encode keys

    # Other event sources and other S3 events (deletes, restores) are not ours to classify.
    source = record.get("eventSource")
    if source is not None and source != "aws:s3":
        return SkippedRecord(index, bucket, key, f"not an S3 event (eventSource {str(source)[:64]!r})", message_id)
    name = record.get("eventName")
    if name is not None and not (isinstance(name, str) and name.startswith("ObjectCreated")):
        return SkippedRecord(index, bucket, key, f"not an object-created event (eventName {str(name)[:64]!r})", message_id)
    if not isinstance(s3, dict):
        return BadRecord(index, None, None, "record has no s3 object", message_id)
    return _object(index, bucket, key, "s3.bucket.name", "s3.object.key", object_obj.get("eTag"),
                   object_obj.get("versionId"), message_id)


def _is_eventbridge(event: dict) -> bool:
    return event.get("source") == "aws.s3" and "detail-type" in event


def _eventbridge_record(index: int, event: dict, message_id: str | None = None) -> Record:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    bucket_obj, object_obj = detail.get("bucket"), detail.get("object")
    bucket = _str(bucket_obj.get("name")) if isinstance(bucket_obj, dict) else None
    object_obj = object_obj if isinstance(object_obj, dict) else {}
    key = object_obj.get("key") if isinstance(object_obj.get("key"), str) else None  # EventBridge does not encode
    kind = event.get("detail-type")
    if kind != "Object Created":
        return SkippedRecord(index, bucket, key, f"not an object-created event (detail-type {str(kind)[:64]!r})", message_id)
    return _object(index, bucket, key, "detail.bucket.name", "detail.object.key", object_obj.get("etag"),
                   object_obj.get("version-id"), message_id)


def _object(index, bucket, key, bucket_field, key_field, etag, version_id, message_id) -> Record:
    if not bucket:
        return BadRecord(index, None, key, f"record has no {bucket_field} string", message_id)
    if not key:
        return BadRecord(index, bucket, None, f"record has no {key_field} string", message_id)
    problem = key_problem(key)
    if problem:
        return BadRecord(index, bucket, key[:64].encode("utf-8", "replace").decode() + "…", problem, message_id)
    return ObjectRecord(index, bucket, key, _str(etag) and etag.strip('"'), _str(version_id), message_id)


def key_problem(key: str) -> str | None:
    """Why S3 could hold no object at ``key`` (None when it could): a key is 1 to 1024 bytes of UTF-8."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeError:
        return "object key is not valid UTF-8"
    return "object key is empty" if not size else f"object key longer than {MAX_KEY_BYTES} bytes" if size > MAX_KEY_BYTES else None


# --- making events -----------------------------------------------------------------------------------------

def _id(text: str) -> str:
    """A uuid derived from ``text``: the same event made twice has the same ids, as a repeat delivery does."""
    import uuid  # only when making events: the function's and the CLI's warm paths never need it

    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


TIME = "1970-01-01T00:00:00.000Z"  # fixed, so the same arguments make the same bytes (a repeat delivery)
ACCOUNT = "123456789012"


def make(shape: str, bucket: str, keys: list[str] = (), removed: list[str] = (), message_ids: list[str] = (),
         region: str = DEFAULT_EVENT_REGION, etags: dict[str, str] | None = None, test_event: bool = False) -> dict:
    """An event of ``shape`` (SHAPES) for objects created at ``keys`` and deleted at ``removed``, as AWS
    delivers it. sqs and sns-sqs: one message per object (as S3 sends them), ids from ``message_ids`` or
    derived from bucket/key (so the same call makes the same event: a repeat delivery); sqs, sns-sqs and
    sns: an s3:TestEvent message first with ``test_event``. eventbridge: exactly one object."""
    if shape not in SHAPES:
        raise InputError(f"unknown event shape {shape!r}", hint=f"One of: {', '.join(SHAPES)}.")
    etags = etags or {}
    for key in [*keys, *removed]:
        if key_problem(key):
            raise InputError(f"{key_problem(key)}: {key[:64]!r}", hint="An S3 key is 1 to 1024 bytes of UTF-8.")
    if not all(message_ids):
        raise InputError("an SQS message id is never empty", hint="Give each --message-id a value, or none.")
    objects = [(key, "ObjectCreated:Put") for key in keys] + [(key, "ObjectRemoved:Delete") for key in removed]
    if shape == "s3-test":
        if objects:
            raise InputError("an s3:TestEvent names no objects", hint="Drop --key/--removed.")
        return _test_event(bucket)
    if shape == "eventbridge":
        if len(objects) != 1 or test_event:
            raise InputError("an EventBridge event carries exactly one object",
                             hint="Give one --key (or one --removed); make one event per object.")
        key, name = objects[0]
        return _eventbridge_event(bucket, key, name, region, etags.get(key))
    records = [_notification_record(bucket, key, name, region, etags.get(key)) for key, name in objects]
    if shape == "s3":
        if test_event:
            raise InputError("S3 sends a Lambda function no s3:TestEvent", hint="Use the s3-test shape, or sqs.")
        return {"Records": records}
    if shape == "sns":
        messages = ([json.dumps(_test_event(bucket))] if test_event else []) + [json.dumps({"Records": [r]}) for r in records]
        return {"Records": [_sns_record(message, region) for message in messages]}
    bodies = [json.dumps({"Records": [r]}) for r in records]
    if test_event:
        bodies.insert(0, json.dumps(_test_event(bucket)))
    if shape == "sns-sqs":
        bodies = [json.dumps(_sns_envelope(body, region)) for body in bodies]
    names = (["s3:TestEvent"] if test_event else []) + [key for key, _ in objects]
    ids = list(message_ids) + [_id(f"rcyc:{bucket}/{name}#{n}")
                               for n, name in enumerate(names)][len(message_ids):]
    if len(message_ids) > len(bodies):
        raise InputError(f"{len(message_ids)} message ids for {len(bodies)} message(s)", hint="Give one --message-id per message.")
    return {"Records": [_sqs_record(body, message_id, region) for body, message_id in zip(bodies, ids)]}


def make_event(bucket: str, keys: list[str]) -> dict:
    """The S3 notification for these keys (keys URL-encoded as S3 does)."""
    return make("s3", bucket, keys)


def _notification_record(bucket: str, key: str, name: str, region: str, etag: str | None) -> dict:
    obj = {"key": quote_plus(key, safe="/"), "sequencer": "0"}
    if name.startswith("ObjectCreated") and etag:
        obj["eTag"] = etag
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": TIME, "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "rcyc",
                   "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj}}


def _eventbridge_event(bucket: str, key: str, name: str, region: str, etag: str | None) -> dict:
    created = name.startswith("ObjectCreated")
    obj = {"key": key, "sequencer": "0"}
    if created and etag:
        obj["etag"] = etag
    return {"version": "0", "id": _id(f"rcyc:{bucket}/{key}:{name}"),
            "detail-type": "Object Created" if created else "Object Deleted", "source": "aws.s3", "account": ACCOUNT,
            "time": TIME[:19] + "Z", "region": region, "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                       "reason": "PutObject" if created else "DeleteObject"}}


def _test_event(bucket: str) -> dict:
    return {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": TIME, "Bucket": bucket}


def _sns_envelope(message: str, region: str) -> dict:
    return {"Type": "Notification", "MessageId": _id(message),
            "TopicArn": f"arn:aws:sns:{region}:{ACCOUNT}:rcyc-uploads", "Subject": "Amazon S3 Notification",
            "Message": message, "Timestamp": TIME}


def _sns_record(message: str, region: str) -> dict:
    return {"EventVersion": "1.0", "EventSource": "aws:sns",
            "EventSubscriptionArn": f"arn:aws:sns:{region}:{ACCOUNT}:rcyc-uploads:{_id(message)}",
            "Sns": _sns_envelope(message, region)}


def _sqs_record(body: str, message_id: str, region: str) -> dict:
    return {"messageId": message_id, "receiptHandle": message_id, "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{region}:{ACCOUNT}:rcyc-uploads", "awsRegion": region}


# --- rebasing events ---------------------------------------------------------------------------------------

def rebase(event: object, moved: dict[str, str], bucket: str | None = None) -> tuple[object, int]:
    """The event with every object key found in ``moved`` (decoded keys) replaced by its value, in every
    shape (encoded again where the shape encodes); returns (event, how many were moved). With ``bucket``, only
    the objects of that bucket move: a record naming another bucket names another object, whatever its key."""
    count = 0

    def key_of(old: str, in_bucket: object) -> str:
        nonlocal count
        if old in moved and (bucket is None or in_bucket == bucket):
            count += 1
            return moved[old]
        return old

    return _rebase(event, key_of, 0), count


def _name_of(holder: object) -> object:
    """``holder["bucket"]["name"]`` where there is one (an S3 record's ``s3``, an EventBridge ``detail``)."""
    found = holder.get("bucket") if isinstance(holder, dict) else None
    return found.get("name") if isinstance(found, dict) else None


def _rebase(event: object, key_of: Callable[[str, object], str], depth: int) -> object:
    if not isinstance(event, dict) or depth > MAX_WRAPPING + 1:
        return event
    if _is_eventbridge(event):
        detail = event.get("detail")
        obj = detail.get("object") if isinstance(detail, dict) else None
        if isinstance(obj, dict) and isinstance(obj.get("key"), str):
            return {**event, "detail": {**detail, "object": {**obj, "key": key_of(obj["key"], _name_of(detail))}}}
        return event
    if event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        return {**event, "Message": _rebase_text(event["Message"], key_of, depth)}
    if not isinstance(event.get("Records"), list):
        return event
    return {**event, "Records": [_rebase_record(r, key_of, depth) for r in event["Records"]]}


def _rebase_record(record: object, key_of: Callable[[str, object], str], depth: int) -> object:
    source = _source(record)
    if source == "aws:sqs" and isinstance(record.get("body"), str):
        return {**record, "body": _rebase_text(record["body"], key_of, depth)}
    if source == "aws:sns" and isinstance(record.get("Sns"), dict):
        return {**record, "Sns": _rebase(record["Sns"], key_of, depth + 1)}
    s3 = record.get("s3") if isinstance(record, dict) else None
    obj = s3.get("object") if isinstance(s3, dict) else None
    if isinstance(obj, dict) and isinstance(obj.get("key"), str):
        key = unquote_plus(obj["key"])
        new = key_of(key, _name_of(s3))
        if new != key:
            return {**record, "s3": {**s3, "object": {**obj, "key": quote_plus(new, safe="/")}}}
    return record


def _rebase_text(text: str, key_of: Callable[[str, object], str], depth: int) -> str:
    try:
        inner = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return json.dumps(_rebase(inner, key_of, depth + 1))
