"""The embedded S3's answer to the GetObject the function makes (a signed GET of a whole object, perhaps with
If-None-Match), written straight from moto's own store; any other request goes to moto unchanged.

Every image an instance classifies is one GET, and each went through moto's request parsing, its action and
CORS bookkeeping and its response assembly: about 2 ms of the stack process's CPU, in the one interpreter
that also routes the runs, for what is a dictionary lookup. The answer here is moto's own: the object from
``get_object`` (its versions and delete markers), its headers from ``FakeKey.response_dict`` and its metadata,
the 304 moto gives for a matching If-None-Match. Only the plain shape is answered: a query (versionId,
partNumber, response-* overrides), a Range or any other condition, an Origin (CORS), an unsigned request, a
streaming payload hash, a body, an AWS4 authorization without a credential scope, a path that does not start with exactly one "/", a bucket policy or bucket logging,
moto's own authentication, cross-account lock or request recorder turned on, an archived object, an object without a content
type, a header value with a line break, a missing object or bucket all go to moto, which answers them in its
own words; so does any request whose answer from the store fails (an object overwritten while it is read).

A GET answered here keeps its connection open for the client's next request, as S3 does: werkzeug, which
serves moto, closes every connection (it cannot drain a request body before the next request line), so each
GET also cost the function a connect and the stack a new thread; the plain shape has no body, so nothing is
left to drain. What moto answers still closes its connection.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable

from .s3_listing import path_style, served_here

# The request headers botocore sends with a plain GetObject; any other header may change the answer.
PLAIN_HEADERS = {"HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT", "HTTP_X_AMZ_DATE",
                 "HTTP_X_AMZ_CONTENT_SHA256", "HTTP_AUTHORIZATION", "HTTP_AMZ_SDK_INVOCATION_ID", "HTTP_AMZ_SDK_REQUEST",
                 "HTTP_X_AMZ_SECURITY_TOKEN", "HTTP_X_AMZ_USER_AGENT", "HTTP_CONNECTION", "HTTP_IF_NONE_MATCH",
                 "HTTP_X_AMZ_CHECKSUM_MODE", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"}
ARCHIVED = {"GLACIER", "DEEP_ARCHIVE"}
NOT_WITH_304 = {"last-modified", "expires"}
Answer = tuple[str, list[tuple[str, str]], bytes]


def keep_alive_gets(handler: type, backend: Callable[[], object]) -> type:
    """``handler`` (moto's werkzeug request handler) answering plain GetObject requests from ``backend()``
    itself, on a connection kept open; any other request goes to werkzeug and moto, as before."""

    class PlainGets(handler):
        protocol_version = "HTTP/1.1"  # keep-alive is HTTP/1.1's default; a client's "Connection: close" still holds
        disable_nagle_algorithm = True  # the headers and the body go out at once, not a delayed-ACK wait apart
        connections = Connections()  # this server's own (keep_alive_gets makes a class per server)

        def setup(self) -> None:
            super().setup()
            self.connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                self.connections.discard(self.connection)

        def run_wsgi(self) -> None:
            try:
                plain = self.command == "GET" and bodiless(self.headers)  # else werkzeug builds the environ, once
                found = plain_get(self.make_environ(), backend) if plain else None
            except Exception:  # e.g. an object overwritten (its buffer closed) while read: moto reads the store again
                found = None
            if found is None:
                try:
                    super().run_wsgi()
                finally:  # werkzeug drains what follows its answer, and says "close" only once its head is written:
                    self.close_connection = True  # an answer that failed before that must end the connection too
            else:
                self._answer(*found)

        def _answer(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            for name, value in headers:
                self.send_header(name, value)
            if code != "304" and not any(name.lower() == "content-length" for name, _ in headers):
                self.send_header("Content-Length", str(len(body)))  # where the answer ends, on a kept connection
            # http.server reads only the first Connection field, and only when it is exactly "close": any close
            # token in any of them is the client's last request (RFC 9112 9.6)
            tokens = {token.strip().lower() for field in self.headers.get_all("Connection") or [] for token in field.split(",")}
            self.close_connection = self.close_connection or "close" in tokens
            if self.close_connection:  # the client asked to close (or spoke HTTP/1.0): say so, as werkzeug would
                self.send_header("Connection", "close")
            elif self.request_version == "HTTP/1.0":  # an HTTP/1.0 client keeps the connection only when told so
                self.send_header("Connection", "keep-alive")
            self.end_headers()
            self.wfile.write(body)

    return PlainGets


class Connections:
    """The connections a server's handler threads hold. A kept connection waits in its thread for the client's
    next request, with no end of its own: the server's shutdown() only stops accepting, so without ``end``
    a stopped server would go on answering its kept connections (and a thread would go on waiting, or
    writing to a client that never reads), each thread and socket left behind for good."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._ended = False

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._open[connection] = threading.current_thread()
            ended = self._ended
        if ended:  # accepted just before the server stopped, set up after end(): no request is read from it
            _shut(connection)

    def discard(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.pop(connection, None)

    def end(self, wait: float = 2.0) -> None:
        """Shut every connection down (a thread waiting for a request reads its end, one writing an answer
        fails at once) and wait up to ``wait`` seconds for their threads."""
        with self._lock:
            self._ended = True
            held = list(self._open.items())
        for connection, _ in held:
            _shut(connection)
        deadline = time.monotonic() + wait
        for _, thread in held:
            thread.join(max(0.0, deadline - time.monotonic()))


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:  # the client went first
        pass


def plain_get(environ: dict, backend: Callable[[], object]) -> Answer | None:
    """(status line, headers, body) of a plain GetObject, or None when moto should answer the request itself."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING", "") not in ("", "x-id=GetObject"):
        return None
    if "HTTP_AUTHORIZATION" not in environ or any(
            name.startswith("HTTP_") and name not in PLAIN_HEADERS for name in environ):
        return None
    if environ.get("HTTP_X_AMZ_CONTENT_SHA256", "").startswith("STREAMING-"):  # moto fails on these (no body)
        return None
    if environ.get("CONTENT_LENGTH") not in (None, "", "0") or environ.get("CONTENT_TYPE"):
        return None  # moto reads a form body as the query (versionId=...)
    authorization = environ["HTTP_AUTHORIZATION"]  # moto takes the region from its credential scope, or fails
    if "AWS4" in authorization and len(authorization.split(",")[0].split("/")) < 3:
        return None
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # the path as sent: its escapes are the key's
    if not raw or not path_style(environ.get("HTTP_HOST", "")):
        return None
    if not raw.startswith("/") or raw.startswith("//"):  # werkzeug and moto read a "//" path their own ways
        return None
    bucket_name, _, quoted_key = raw.split("?", 1)[0][1:].partition("/")
    try:
        key_name = urllib.parse.unquote(quoted_key, errors="strict")
    except UnicodeDecodeError:
        return None
    store = backend()
    bucket = getattr(store, "buckets", {}).get(bucket_name)
    if not key_name or not served_here(bucket):
        return None
    key = store.get_object(bucket_name, key_name)
    if key is None or key.storage_class in ARCHIVED or "content-type" not in key.metadata:
        return None  # (moto's serializer gives an object stored without a type one of its own)
    headers = {"x-amz-version-id": key.version_id} if key.version_id != "null" else {}
    headers.update(key.response_dict)
    wanted = environ.get("HTTP_IF_NONE_MATCH")
    if wanted and key.etag in (wanted, f'"{wanted}"'):  # as moto (and werkzeug under it): no entity headers
        headers = {k: v for k, v in headers.items() if k not in NOT_WITH_304 and not k.startswith("content-")}
        return ("304 Not Modified", _listed(headers), b"") if _sendable(headers) else None
    if environ.get("HTTP_X_AMZ_CHECKSUM_MODE") == "ENABLED" and key.checksum_algorithm:  # botocore checks it
        composite = key.checksum_type == "COMPOSITE"
        headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = (
            f"{key.checksum_value}-{key.checksum_parts}" if composite else key.checksum_value)
        if key.checksum_type:
            headers["x-amz-checksum-type"] = key.checksum_type
    headers.update(key.metadata)
    headers["Accept-Ranges"] = "bytes"
    return ("200 OK", _listed(headers), key.value) if _sendable(headers) else None


def bodiless(headers) -> bool:
    """Whether the request head, as http.server parsed it, leaves no doubt that no body follows: nothing
    drains a body on a kept connection, so one left unread would be read as the next request. The environ
    does not tell: werkzeug keeps the last of two Content-Length fields, and the parser drops a field it
    cannot read (a space before the colon) with every field after it, or folds a continuation line into
    the field before."""
    lengths = headers.get_all("Content-Length") or []
    return (not headers.defects and all(value.strip() == "0" for value in lengths) and "Transfer-Encoding" not in headers
            and not any("\n" in value for value in headers.values()))


def _sendable(headers: dict) -> bool:
    """No line break in a value (metadata written into the store): moto's Response refuses those (a 500); and
    nothing http.server cannot write (it encodes a header as Latin-1): the answer would fail half-written,
    with a traceback and the connection dropped. moto answers both in its own words."""
    for name, value in headers.items():
        field = f"{name}: {value}"
        if "\n" in field or "\r" in field:
            return False
        try:
            field.encode("latin-1")
        except UnicodeEncodeError:
            return False
    return True


def _listed(headers: dict) -> list[tuple[str, str]]:
    # the two headers moto's server adds to every answer (its request id, and CORS for browsers)
    return [*((str(name), str(value)) for name, value in headers.items()), ("x-amzn-requestid", uuid.uuid4().hex),
            ("Access-Control-Allow-Origin", "*")]
