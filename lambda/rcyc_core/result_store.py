"""Results written back to S3: one JSON object per record at ``<prefix><key>.json``, holding the record's
entry of the result contract and the model that answered. One format and one writer: the S3-triggered
function and ``rcyc classify`` both write (and read) results through here."""

from __future__ import annotations

import json

from .s3 import NOT_FOUND_CODES, client_error_code

MODEL_METADATA = "rcyc-model-sha256"  # also on the object's metadata, so a HEAD tells which model answered


def result_key(prefix: str, key: str) -> str:
    return f"{prefix}{key}.json"


def result_document(entry: dict, model: dict | None) -> dict:
    return {**entry, "model": model}


def result_object(prefix: str, entry: dict, model: dict | None) -> tuple[str, bytes, dict[str, str]]:
    """(key, body, user metadata) of one record's result object."""
    metadata = {MODEL_METADATA: model["sha256"]} if model and model.get("sha256") else {}
    return result_key(prefix, entry["key"]), json.dumps(result_document(entry, model)).encode(), metadata


def write_result(s3, bucket: str, prefix: str, entry: dict, model: dict | None) -> str:
    """Write one record's result; returns the object's ETag (its content hash, which a listing shows too).
    S3 errors propagate (callers decide what a failed write costs)."""
    key, body, metadata = result_object(prefix, entry, model)
    reply = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata)
    return reply.get("ETag", "")


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
    if not (isinstance(document, dict) and document.get("key") == key):
        document = None
    return (document, obj.get("ETag", "")) if with_etag else document
