"""rcyc's own reads of the warm stack's S3 (``S3_LIST_PATH``, ``S3_OBJECT_PATH``), answered from the store: a
ListObjectsV2 page as JSON in boto3's shape, an object as its bytes with its ETag. Errors are JSON
``{"code", "message"}`` with S3's status and code; 501 ``UseTheS3Api`` where the S3 API must answer (a bucket
with a policy, which moto evaluates). The client is ``s3_reads.StackS3``."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from .protocol import DIGITS_RE, S3_LIST_PATH, S3_READ_HEADER

MAX_KEYS = 1000  # S3's most a page
NOT_FOUND = ("NoSuchBucket", "NoSuchKey")
PARAMETERS = {S3_LIST_PATH: {"bucket", "prefix", "max-keys", "continuation-token"}}  # the object path: bucket, key

Answer = tuple[int, bytes, dict[str, str]]


def answer(path: str, query: str, s3) -> Answer:
    """The answer to a GET of ``path`` (one of the two read paths) with ``query``, from ``s3`` (EmbeddedS3)."""
    from moto.core.exceptions import ServiceException

    try:
        params = parse_qs(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return error(400, "InvalidArgument", "the query is not UTF-8")
    if any(len(values) != 1 for values in params.values()):
        return error(400, "InvalidArgument", "each parameter at most once")
    one = {name: values[0] for name, values in params.items()}
    unknown = set(one) - PARAMETERS.get(path, {"bucket", "key"})
    if unknown:  # a delimiter, a version, a range: a question this route does not answer, never answered as another
        return error(400, "InvalidArgument", f"not a parameter of this read: {sorted(unknown)[0][:60]}")
    if not one.get("bucket"):
        return error(400, "InvalidArgument", "name a bucket")
    try:
        return _list(s3, one) if path == S3_LIST_PATH else _object(s3, one)
    except ServiceException as exc:
        return error(404 if exc.code in NOT_FOUND else 400, exc.code, exc.message)


def _list(s3, one: dict[str, str]) -> Answer:
    max_keys, token = one.get("max-keys", str(MAX_KEYS)), one.get("continuation-token")
    if not DIGITS_RE.fullmatch(max_keys) or not 0 <= int(max_keys) <= MAX_KEYS:
        return error(400, "InvalidArgument", f"max-keys is a whole number from 0 to {MAX_KEYS}")
    if token == "":
        return error(400, "InvalidArgument", "The continuation token provided is incorrect")
    page = s3.list_page(one["bucket"], one.get("prefix", ""), token, int(max_keys))
    return _through_the_api() if page is None else (200, json.dumps(page).encode(), {S3_READ_HEADER: "list"})


def _object(s3, one: dict[str, str]) -> Answer:
    if not one.get("key"):
        return error(400, "InvalidArgument", "name a key")
    found = s3.read_object(one["bucket"], one["key"])
    if found is None:
        return _through_the_api()
    body, etag = found
    return 200, body, {"ETag": etag, S3_READ_HEADER: "object"}


def _through_the_api() -> Answer:
    return error(501, "UseTheS3Api", "moto must answer this itself (a bucket policy or logging, its authentication "
                 "or recorder on): read it through the S3 API")


def error(status: int, code: str, message: str) -> Answer:
    return status, json.dumps({"code": code, "message": message}).encode(), {S3_READ_HEADER: "error"}
