"""Results written back to S3: one JSON object per record at ``<prefix><key>.json``, holding the record's
entry of the result contract, the object version it was made from (``object``: ETag, version id) and the
model that answered. One format and one writer: the S3-triggered function and ``rcyc classify`` both write
(and read) results through here.

A document depends only on the object, its bytes and the model (never on the delivery: no record index,
keys sorted), so a repeat delivery that does write again writes the same bytes."""

from __future__ import annotations

import json

from .s3 import NOT_FOUND_CODES, client_error_code

MODEL_METADATA = "rcyc-model-sha256"  # also on the object's metadata, so a HEAD tells which model answered


def result_key(prefix: str, key: str) -> str:
    return f"{prefix}{key}.json"


def result_document(entry: dict, model: dict | None, obj: dict | None = None) -> dict:
    document = {k: v for k, v in entry.items() if k not in ("record", "retryable")}
    if obj:
        document["object"] = obj
    return {**document, "model": model}


def result_object(prefix: str, entry: dict, model: dict | None, obj: dict | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(key, body, user metadata) of one record's result object (``obj``: the ETag and version id of the bytes
    classified). Keys sorted, so a repeat delivery writes the same bytes."""
    metadata = {MODEL_METADATA: model["sha256"]} if model and model.get("sha256") else {}
    body = json.dumps(result_document(entry, model, obj), sort_keys=True).encode()
    return result_key(prefix, entry["key"]), body, metadata


def write_result(s3, bucket: str, prefix: str, entry: dict, model: dict | None, obj: dict | None = None) -> str:
    """Write one record's result; returns the object's ETag (its content hash, which a listing shows too).
    S3 errors propagate (callers decide what a failed write costs)."""
    key, body, metadata = result_object(prefix, entry, model, obj)
    reply = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata)
    return reply.get("ETag", "")


def reusable(document: dict | None, sha256: str, etag: str | None, version_id: str | None) -> bool | None:
    """Whether a stored result answers this object version for the model ``sha256``: True, False, or None
    when the event names no version (ask S3: a conditional GET on the stored ETag)."""
    if not document or (document.get("model") or {}).get("sha256") != sha256:
        return False
    obj = document.get("object") or {}
    if version_id and obj.get("version_id"):
        return obj["version_id"] == version_id
    if etag:
        return obj.get("etag") == etag
    return None if obj.get("etag") else False


def stored_entry(document: dict, record: int) -> dict:
    """A stored result as the entry of this delivery's record."""
    return {"record": record, **{k: v for k, v in document.items() if k not in ("record", "model", "object")}}


def read_result(s3, bucket: str, prefix: str, key: str, with_etag: bool = False):
    """The stored result of ``key``, or None when there is none (or it is not a result document); with
    ``with_etag``, (document, ETag)."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=result_key(prefix, key))
        body = obj["Body"].read()
    except Exception as exc:
        if client_error_code(exc) in NOT_FOUND_CODES:
            return (None, "") if with_etag else None
        raise
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not _well_formed(document, key):
        document = None
    return (document, obj.get("ETag", "")) if with_etag else document


def _well_formed(document: object, key: str) -> bool:
    """Whether a stored object is a result of ``key`` as write_result writes it. Anyone with write access to
    the results prefix can leave anything there: a malformed one is classified again, never trusted."""
    if not isinstance(document, dict) or document.get("key") != key:
        return False
    model, obj = document.get("model"), document.get("object", {})
    return (model is None or isinstance(model, dict)) and isinstance(obj, dict) and all(
        isinstance(obj.get(field), (str, type(None))) for field in ("etag", "version_id"))
