"""The embedded S3's answer to the listing rcyc makes (ListObjectsV2 by prefix, page size and continuation
token), written straight from moto's own store; any other request goes to moto unchanged.

moto renders a listing through its generic model-driven serializer, and parses every object's timestamp back
with dateutil on the way: about 0.2 ms a key in the stack process, whose one interpreter also serves the
function's GETs. A resume of ``classify --local`` over 1,000 keys lists 2,000 (the images and their results):
about 0.5 s of the stack's CPU. The same page from moto's backend (``list_objects_v2``: its ordering, its
delete markers, its continuation tokens) written as S3's XML costs about 0.02 ms a key. Only the plain shape
is answered here: a delimiter, ``start-after``, ``fetch-owner``, a virtual-hosted address, a missing bucket,
and whatever ``served_here`` leaves to moto (a bucket policy or logging; moto's authentication, cross-account
lock or recorder on) all go to moto, which answers them (and their errors) in its own words.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import uuid
from collections.abc import Callable
from xml.sax.saxutils import escape

PLAIN = {"list-type", "prefix", "max-keys", "continuation-token", "encoding-type"}
NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def fast_listing(app: Callable, backend: Callable[[], object]) -> Callable:
    """``app`` (moto's WSGI app) with plain ListObjectsV2 requests answered from ``backend()`` directly."""

    def answer(environ, start_response):
        body = listing(environ, backend) if environ.get("REQUEST_METHOD") == "GET" else None
        if body is None:
            return app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                                   ("x-amz-request-id", uuid.uuid4().hex)])  # as S3 and moto (rcyc checks for one)
        return [body]

    return answer


def listing(environ: dict, backend: Callable[[], object]) -> bytes | None:
    """The XML of a plain ListObjectsV2 page, or None when moto should answer the request itself."""
    try:  # escapes that decode to no UTF-8 are kept as they are by moto, not replaced: its answer
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return None
    if query.get("list-type") != ["2"] or not set(query) <= PLAIN or any(len(v) != 1 for v in query.values()):
        return None
    bucket_name = environ.get("PATH_INFO", "").strip("/")  # already decoded (WSGI)
    if not bucket_name or "/" in bucket_name or not path_style(environ.get("HTTP_HOST", "")):
        return None
    encoding = query.get("encoding-type", [None])[0]
    token = query.get("continuation-token", [None])[0]
    try:
        max_keys = int(query.get("max-keys", ["1000"])[0])
    except ValueError:
        return None
    if encoding not in (None, "url") or token == "" or not 0 <= max_keys <= 1000:
        return None
    store = backend()
    bucket = getattr(store, "buckets", {}).get(bucket_name)
    if not served_here(bucket):
        return None
    prefix = query.get("prefix", [""])[0]
    keys, truncated, next_token = store.list_objects_v2(bucket=bucket, prefix=prefix or None, delimiter=None,
                                                        continuation_token=token, start_after=None, max_keys=max_keys)
    return _xml(bucket_name, prefix, max_keys, encoding, keys, truncated, next_token)


def _xml(bucket: str, prefix: str, max_keys: int, encoding: str | None, keys, truncated: bool, next_token: str | None) -> bytes:
    quote = (lambda text: urllib.parse.quote(text)) if encoding == "url" else (lambda text: text)
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NAMESPACE}">',
             f"<Name>{escape(bucket)}</Name><Prefix>{escape(quote(prefix))}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
             f"<KeyCount>{len(keys)}</KeyCount><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
    if encoding:
        parts.append(f"<EncodingType>{encoding}</EncodingType>")
    for key in keys:
        checksum = getattr(key, "checksum_algorithm", None)
        parts.append(f"<Contents><Key>{escape(quote(key.name))}</Key><LastModified>{key.last_modified_ISO8601}</LastModified>"
                     f"<ETag>{escape(key.etag)}</ETag><Size>{key.size}</Size><StorageClass>{escape(key.storage_class)}</StorageClass>"
                     + (f"<ChecksumAlgorithm>{escape(checksum)}</ChecksumAlgorithm>" if checksum else "") + "</Contents>")
    if next_token:
        parts.append(f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def path_style(host: str) -> bool:
    """An address naming no bucket (127.0.0.1:PORT, localhost): the bucket is the path's."""
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if name != "localhost":
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
    from moto.s3.responses import S3Response  # and moto reads it so too (not "127.0.0.1:", "127.0.0.1:x")

    return not S3Response.subdomain_based_buckets(_HostOnly(host))


class _HostOnly:
    """The part of a request moto looks at to tell a path-style address from a virtual-hosted one."""

    def __init__(self, host: str):
        self.headers = {"host": host}


def served_here(bucket) -> bool:
    """Whether an answer about ``bucket`` written from moto's store is the one moto would give (None: no such
    bucket, moto words that error). Otherwise moto answers, because it would do more than answer: evaluate the
    bucket's policy, write a log object per request (bucket logging), check signatures and IAM policies
    (INITIAL_NO_AUTH_ACTION_COUNT), look the bucket up in the request's own account, or record the request.
    One test for every answer written here: the function's GETs, the listings, the stack's read routes."""
    return (bucket is not None and not getattr(bucket, "policy", None) and not getattr(bucket, "logging", None)
            and _open_to_all() and _one_namespace() and not _recording())


def _open_to_all() -> bool:
    """moto checks signatures and IAM policies only when told to (INITIAL_NO_AUTH_ACTION_COUNT); then it answers."""
    from moto import settings

    return settings.INITIAL_NO_AUTH_ACTION_COUNT == float("inf")


def _recording() -> bool:
    """moto records each request it answers while its recorder is on (MOTO_ENABLE_RECORDING, start_recording)."""
    from moto.moto_api import recorder

    return getattr(recorder, "_user_enabled", True) is not False


def _one_namespace() -> bool:
    """moto may find the bucket from another account or partition than ``backend()`` (the request's access key,
    its region, MOTO_ACCOUNT_ID): the same bucket, unless cross-account access is turned off (then a 403)."""
    from moto.settings import s3_allow_crossdomain_access

    return s3_allow_crossdomain_access()
