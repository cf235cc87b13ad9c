"""The warm stack's S3 as the local commands use it: its two reads (ListObjectsV2, GetObject) come from the
stack itself over the plain loopback socket (``s3_route``), in boto3's shapes (the fields rcyc reads); every
other call goes to a boto3 client of the stack's S3, made on its first use.

Why: a ``classify --local`` with nothing to do only reads (the pointer, two listings, the resume index), and
boto3's import and an S3 client were about half of that whole command. The stack's S3 is private to its
user's loopback and checks no signature (moto), so reading it through the stack gives nothing away; a
stack that predates the reads, a bucket with a policy, an object too large for one answer: read by boto3.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Callable
from urllib.parse import urlencode

from . import loopback
from .protocol import S3_LIST_PATH, S3_OBJECT_PATH, S3_READ_HEADER

READ_TIMEOUT = 30.0  # seconds for one whole read, as the boto3 client's read timeout
READ_LIMIT = 1 << 30  # an index file holds ~1 KB a result; a larger object is read by boto3
PAGE_MOST = 1000  # keys in one ListObjectsV2 page of S3
THROUGH_BOTO3 = (404, 501)  # 404 without an S3 code: no such route (an older stack); 501: the S3 API must answer


class StackS3:
    def __init__(self, stack_url: str, make_client: Callable[[], object]):
        self.stack_url = stack_url.rstrip("/")
        self._make_client, self._client, self._lock = make_client, None, threading.Lock()

    @property
    def client(self):
        """The boto3 client for everything but the two reads, made once, on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.client, name)

    def list_objects_v2(self, Bucket: str, Prefix: str = "", MaxKeys: int = 1000, ContinuationToken: str | None = None,
                        **other):
        params = {"Bucket": Bucket, "Prefix": Prefix, "MaxKeys": MaxKeys, **other}
        if ContinuationToken is not None:
            params["ContinuationToken"] = ContinuationToken
        # S3 answers at most 1,000 keys a page whatever MaxKeys asks (the route refuses more, as a question it
        # does not answer): the same page as S3's, never an error where boto3 gets a page
        query = {"bucket": Bucket, "prefix": Prefix, "max-keys": min(MaxKeys, PAGE_MOST) if type(MaxKeys) is int else MaxKeys}
        if ContinuationToken is not None:
            query["continuation-token"] = ContinuationToken
        answer = None if other else self._read("ListObjectsV2", S3_LIST_PATH, query)
        if answer is None:
            return self.client.list_objects_v2(**params)
        page = _page(answer[1])
        if page is None:
            raise _not_the_stack(self.stack_url, "a listing that is not one")
        if not page.get("Contents"):
            page.pop("Contents", None)  # as boto3: no Contents in an empty page
        return page

    def get_object(self, Bucket: str, Key: str, **other):
        answer = None if other else self._read("GetObject", S3_OBJECT_PATH, {"bucket": Bucket, "key": Key})
        if answer is None:
            return self.client.get_object(Bucket=Bucket, Key=Key, **other)
        headers, body = answer
        return {"Body": io.BytesIO(body), "ContentLength": len(body), "ETag": headers.get("etag", "")}

    def _read(self, operation: str, path: str, query: dict) -> tuple[dict[str, str], bytes] | None:
        """(headers, body) of the stack's answer; None where boto3 must read it instead."""
        try:
            status, headers, body = loopback.exchange(f"{self.stack_url}{path}?{urlencode(query)}",
                                                      timeout=READ_TIMEOUT, answer_limit=READ_LIMIT)
        except loopback.AnswerTooLarge:
            return None
        except (OSError, ValueError) as exc:  # refused, reset, timed out, not HTTP
            raise _unreachable(self.stack_url, exc) from None
        if S3_READ_HEADER.lower() not in headers:  # a stack from before the reads (404), or not the stack at all
            if status == 404:
                return None
            raise _not_the_stack(self.stack_url, f"{status} without the stack's read header")
        if status == 200:
            return headers, body
        code, message = _said(body)
        if status in THROUGH_BOTO3 and (status == 501 or code is None):
            return None
        raise _client_error(operation, status, code or str(status), message)


def _page(body: bytes) -> dict | None:
    """The stack's ListObjectsV2 page, checked field by field (None: not one)."""
    try:
        page = json.loads(body)
    except ValueError:
        return None
    if not isinstance(page, dict) or not isinstance(page.get("IsTruncated"), bool) or not isinstance(page.get("KeyCount"), int):
        return None
    contents, token = page.get("Contents", []), page.get("NextContinuationToken")
    if not isinstance(contents, list) or not (token is None or isinstance(token, str)) or not all(
            isinstance(o, dict) and isinstance(o.get("Key"), str) and isinstance(o.get("ETag"), str)
            and isinstance(o.get("Size"), int) for o in contents):
        return None
    return page


def _said(body: bytes) -> tuple[str | None, str]:
    """The S3 code and message of the stack's error answer (None: not one of its S3 answers)."""
    try:
        said = json.loads(body)
        return (said["code"], str(said.get("message", ""))) if isinstance(said.get("code"), str) else (None, "")
    except (ValueError, AttributeError, KeyError):
        return None, ""


def _client_error(operation: str, status: int, code: str, message: str):
    """S3's error as the botocore ClientError boto3 would raise: every caller's checks read one code."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


def _not_the_stack(stack_url: str, what: str):
    from rcyc_core.errors import AwsError

    return AwsError(f"something other than the local stack answered a read of its S3 at {stack_url}: {what}",
                    kind="Unreachable", hint="rcyc local status says whether the stack runs there; rcyc local down, "
                                             "then run the command again.")


def _unreachable(stack_url: str, exc: BaseException):
    from rcyc_core.errors import AwsError

    return AwsError(f"the local stack at {stack_url} did not answer a read of its S3: {exc or type(exc).__name__}",
                    kind="Unreachable", hint="rcyc local status says whether it runs; rcyc local down, then run the command again.")
