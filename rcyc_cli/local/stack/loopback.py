"""One HTTP request to the warm stack on 127.0.0.1 with a plain socket. A warm ``invoke-local`` sends one
status request and one POST; ``http.client`` (which urllib.request uses) imports the email parser and ssl
first, about a tenth of that whole command. The stack's server is ours and answers every request with a
Content-Length (``invoke_api``); anything else it says is refused here, never guessed at."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

ANSWER_LIMIT = 64 * 1024 * 1024  # more than any answer of the stack (a run's results): a broken peer is cut off
HEAD_LIMIT = 16 * 1024  # the stack's status line and headers are a few hundred bytes


class StackAnswerError(ConnectionError):
    """The stack's answer could not be read as HTTP (cut short, malformed, too large)."""


class AnswerTooLarge(StackAnswerError):
    """An answer over the exchange's limit (a caller may have another way to read it)."""


def request(url: str, body: bytes | None = None, timeout: float = 2.0,
            content_type: str = "application/json") -> tuple[int, bytes]:
    """(status, body) of a GET (``body`` None) or POST to ``url`` on 127.0.0.1. Raises OSError when nothing
    answers (refused, reset) or the answer is no HTTP, and TimeoutError when the whole exchange takes more
    than ``timeout`` seconds: a peer that answers a byte at a time is cut off like a silent one."""
    status, _, answer = exchange(url, body, timeout, content_type)
    return status, answer


def exchange(url: str, body: bytes | None = None, timeout: float = 2.0, content_type: str = "application/json",
             answer_limit: int = ANSWER_LIMIT, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """``request`` with the answer's headers (names in lower case), a limit of its own on the body's size, and
    ``headers`` of the caller's own (rcyc's constants: never a user's text)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
        raise ValueError(f"not the stack's loopback address: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.1", f"Host: 127.0.0.1:{parts.port}",
             "Connection: close", "Accept: application/json"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", parts.port), timeout=timeout) as sock:
        _remaining(sock, deadline)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b""))
        return _read_answer(sock, deadline, answer_limit)


def _remaining(sock: socket.socket, deadline: float) -> None:
    """The socket's next operation may take only what is left of the exchange's time."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)


def _read_answer(sock: socket.socket, deadline: float, limit: int) -> tuple[int, dict[str, str], bytes]:
    received = bytearray()
    head_end, status, headers, length = -1, 0, {}, None
    while True:
        _remaining(sock, deadline)
        chunk = sock.recv(1 << 16)
        received += chunk
        if head_end < 0:
            head_end = received.find(b"\r\n\r\n")  # in at most HEAD_LIMIT + one chunk: never a long scan
        if head_end < 0 and len(received) > HEAD_LIMIT:
            raise StackAnswerError("the stack's answer has a head larger than any it gives")
        if len(received) > limit + HEAD_LIMIT:
            raise AnswerTooLarge("the stack's answer is larger than any it gives")
        if head_end >= 0 and length is None:
            status, headers = _parse_head(bytes(received[:head_end]))
            length = _content_length(headers, limit)
        if length is not None and len(received) - head_end - 4 >= length:
            with memoryview(received) as view:  # one copy of the body, not two (a slice of a bytearray is one)
                return status, headers, bytes(view[head_end + 4:head_end + 4 + length])
        if not chunk:
            raise StackAnswerError("the stack's answer was cut short")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers) of an answer's status line and headers."""
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not _decimal(status_line[1], 3):
        raise StackAnswerError(f"the stack's answer is not HTTP: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status_line[1]), headers


def _content_length(headers: dict[str, str], limit: int) -> int:
    value = headers.get("content-length")
    if value is None:
        raise StackAnswerError("the stack's answer has no Content-Length")
    if not _decimal(value, 12):
        raise StackAnswerError("the stack's answer has no usable Content-Length")
    if int(value) > limit:
        raise AnswerTooLarge("the stack's answer is larger than any it gives")
    return int(value)


def _decimal(text: str, digits: int) -> bool:
    """Whether ``text`` is 1 to ``digits`` ASCII digits (str.isdigit also takes '²', which int() refuses)."""
    return 0 < len(text) <= digits and all("0" <= c <= "9" for c in text)
