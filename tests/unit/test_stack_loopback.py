"""The warm CLI path's one request to the stack (stack/loopback.py): a plain socket instead of http.client,
reading exactly the answer's Content-Length; an answer that is no HTTP, or cut short, is an OSError (the
callers' "the stack did not answer"), never a partial body taken for a whole one."""

from __future__ import annotations

import socket
import threading

import pytest

from rcyc_cli.local.stack import loopback


def serve_once(answer: bytes) -> tuple[str, list[bytes]]:
    """A one-connection server on 127.0.0.1 that reads the request, sends ``answer`` and closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def run():
        with listener:
            connection, _ = listener.accept()
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(4096)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
                while len(body) < length:
                    body += connection.recv(4096)
                seen.append(head + b"\r\n\r\n" + body)
                connection.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", seen


def test_a_post_sends_its_body_and_reads_exactly_the_announced_answer():
    url, seen = serve_once(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\": true}trailing")
    status, body = loopback.request(url + "/rcyc/runs", b'{"images": []}', timeout=10)
    assert status == 200 and body == b'{"ok": true'  # 11 bytes, what Content-Length said; the rest is not the answer
    assert seen[0].startswith(b"POST /rcyc/runs HTTP/1.1\r\n") and seen[0].endswith(b'\r\n\r\n{"images": []}')
    assert b"Content-Length: 14" in seen[0]


def test_a_refusal_keeps_its_status_and_body():
    url, _ = serve_once(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n\r\nbusy")
    assert loopback.request(url + "/rcyc/status", timeout=10) == (429, b"busy")


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", b"HTTP/1.1 200 OK\r\n\r\n{}",
                                    b"SSH-2.0-OpenSSH\r\n\r\n", b""])
def test_an_answer_cut_short_or_not_http_is_an_oserror(answer):
    url, _ = serve_once(answer)
    with pytest.raises(OSError):
        loopback.request(url + "/rcyc/status", timeout=10)


def test_nothing_listening_is_an_oserror_and_only_loopback_is_spoken_to():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        loopback.request(f"http://127.0.0.1:{port}/rcyc/status", timeout=5)
    with pytest.raises(ValueError):
        loopback.request("http://example.invalid:80/rcyc/status")


def test_a_large_answer_is_held_once_beside_what_was_received_not_twice():
    """The stack's S3 reads bring objects this way (up to s3_reads.READ_LIMIT): the body is copied out of what was
    received once (a slice of a bytearray is a copy of its own: a 300 MB object peaked at 900 MB)."""
    import tracemalloc

    size = 8 * 1024 * 1024
    url, _ = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    tracemalloc.start()
    try:
        status, _, body = loopback.exchange(url + "/rcyc/s3/object", timeout=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200 and len(body) == size
    assert peak < 2.5 * size, f"peak {peak / size:.2f}x the body"
