"""The warm path's loopback client against a broken or hostile peer on the stack's port: whatever it sends
(a drip, an endless head, a huge or non-ASCII Content-Length), the request ends as an OSError within its
timeout for the whole exchange, never later and never as another exception type."""

from __future__ import annotations

import socket
import threading

import pytest

from rcyc_cli.local.stack import loopback


def serve(behaviour) -> tuple[str, threading.Event]:
    """A one-connection server on 127.0.0.1: reads the request head, then ``behaviour(connection, stop)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run():
        with listener:
            connection, _ = listener.accept()
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(4096)
                try:
                    behaviour(connection, stop)
                except OSError:
                    pass

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/rcyc/status", stop


def drip(connection, stop):
    """A valid answer, one byte every 0.2 s (about 20 s in all): each read sees data, the whole never ends in time."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n" + b"{" + b" " * 58 + b"}"
    for byte in answer:
        if stop.wait(0.2):
            return
        connection.sendall(bytes([byte]))


def test_a_drip_is_cut_off_at_the_timeout_of_the_whole_exchange():
    url, stop = serve(drip)
    try:
        with pytest.raises(TimeoutError):
            loopback.request(url, timeout=1.0)
    finally:
        stop.set()


def endless_head(connection, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.is_set():
        connection.sendall(b"X-Filler: " + b"a" * 4000 + b"\r\n")


def test_an_endless_head_is_refused_once_it_is_longer_than_any_the_stack_sends():
    url, stop = serve(endless_head)
    try:
        with pytest.raises(loopback.StackAnswerError, match="head"):
            loopback.request(url, timeout=30.0)
    finally:
        stop.set()


def announce_and_hold(announced: bytes):
    def behaviour(connection, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + announced + b"\r\n\r\n{}")
        stop.wait(30)
    return behaviour


@pytest.mark.parametrize("announced", [b"99999999999999", b"1" * 40, "\u00b2".encode("latin-1"), b"-1", b"+2", b"0x2"])
def test_a_content_length_no_answer_of_the_stack_has_is_refused_at_once(announced):
    # Refused when the head is read (a StackAnswerError, an OSError), not waited for until the peer gives up,
    # and never a ValueError from int() ('²' is a digit to str.isdigit).
    url, stop = serve(announce_and_hold(announced))
    try:
        with pytest.raises(loopback.StackAnswerError):
            loopback.request(url, timeout=20.0)
    finally:
        stop.set()


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 \xb200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 -20 OK"])
def test_a_status_that_is_not_three_ascii_digits_is_no_http(status_line):
    url, stop = serve(lambda connection, _stop: connection.sendall(status_line + b"\r\nContent-Length: 2\r\n\r\n{}"))
    with pytest.raises(loopback.StackAnswerError, match="not HTTP"):
        loopback.request(url, timeout=10.0)
    stop.set()


def test_time_spent_sending_counts_against_the_same_timeout(monkeypatch):
    # the deadline is taken once: a clock already past it refuses the next read instead of granting a new timeout
    url, stop = serve(drip)
    clock = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    monkeypatch.setattr(loopback.time, "monotonic", lambda: next(clock, 100.0))
    try:
        with pytest.raises(TimeoutError):
            loopback.request(url, timeout=5.0)
    finally:
        stop.set()
