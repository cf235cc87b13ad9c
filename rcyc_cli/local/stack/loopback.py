"""One HTTP request to the warm stack on 127.0.0.1 with a plain socket. A warm ``invoke-local`` sends one
status request and one POST; ``http.client`` (which urllib.request uses) imports the email parser and ssl
first, about a tenth of that whole command. The stack's server is ours and answers every request with a
Content-Length (``invoke_api``); anything else it says is refused here, never guessed at."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

ANSWER_LIMIT = 64 * 1024 * 1024  # more than any answer of the stack (a run's results): a broken peer is cut off


class StackAnswerError(ConnectionError):
    """The stack's answer could not be read as HTTP (cut short, malformed, too large)."""


def request(url: str, body: bytes | None = None, timeout: float = 2.0,
            content_type: str = "application/json") -> tuple[int, bytes]:
    """(status, body) of a GET (``body`` None) or POST to ``url`` on 127.0.0.1. Raises OSError when nothing
    answers (refused, reset, ``timeout`` seconds of silence on any read) or the answer is no HTTP."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
        raise ValueError(f"not the stack's loopback address: {url}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.1", f"Host: 127.0.0.1:{parts.port}",
             "Connection: close", "Accept: application/json"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    with socket.create_connection(("127.0.0.1", parts.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b""))
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    received = bytearray()
    length = None
    while True:
        chunk = sock.recv(1 << 16)
        if chunk:
            received += chunk
            if len(received) > ANSWER_LIMIT:
                raise StackAnswerError("the stack's answer is larger than any it gives")
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0 and length is None:
            status, length = _parse_head(bytes(received[:head_end]))
        if length is not None and len(received) - head_end - 4 >= length:
            return status, bytes(received[head_end + 4:head_end + 4 + length])
        if not chunk:
            raise StackAnswerError("the stack's answer was cut short")


def _parse_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of an answer's status line and headers."""
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise StackAnswerError(f"the stack's answer is not HTTP: {lines[0][:60]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise StackAnswerError("the stack's answer has no usable Content-Length")
            return int(status_line[1]), int(value.strip())
    raise StackAnswerError("the stack's answer has no Content-Length")
