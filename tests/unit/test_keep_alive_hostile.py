"""Hostile cases for the embedded S3's kept connections (s3_get.keep_alive_gets): request framing on a
connection that outlives its first answer, HTTP versions and Connection tokens, odd answers (304, empty,
large, odd metadata, objects and buckets changed under a kept connection), stop() with connections still
open, resources per request, and failures while an answer is written. Everything goes over real sockets to a
real EmbeddedS3; test_embedded_s3_get.py holds the cases that compare each answer with moto's."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import threading
import time
from contextlib import contextmanager

import pytest

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3

BUCKET = "keep-alive-hostile"
SMALL, EMPTY, LARGE = "k/small.jpg", "k/empty.jpg", "k/large.bin"
SMALL_BODY, LARGE_BODY = b"small body", os.urandom(1 << 16) * 320  # 20 MiB
AUTH = ("AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=0")
SIGNED = {"Host": "127.0.0.1:9", "Authorization": AUTH, "X-Amz-Date": "20261206T000000Z",
          "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
WAIT = 10.0


def request(method: str = "GET", path: str = f"/{BUCKET}/{SMALL}", *extra: str, version: str = "HTTP/1.1",
            body: bytes = b"") -> bytes:
    lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in SIGNED.items()), *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Answer:
    def __init__(self, status: int, head: bytes, body: bytes):
        self.status, self.head, self.body = status, head, body

    def header(self, name: str) -> list[str]:
        return [m.decode("latin-1").strip() for m in re.findall(rb"(?im)^" + name.encode() + rb":([^\r\n]*)", self.head)]

    @property
    def closes(self) -> bool:
        return any("close" in v.lower() for v in self.header("connection"))


class Raw:
    """One client connection, read strictly: an answer's end is where its framing says."""

    def __init__(self, port: int, timeout: float = WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.stream = self.sock.makefile("rb")

    def send(self, data: bytes) -> Raw:
        self.sock.sendall(data)
        return self

    def answer(self, head_only: bool = False) -> Answer | None:
        """The next answer (None at EOF before any byte of it)."""
        line = self.stream.readline(70000)
        if not line:
            return None
        assert line.startswith(b"HTTP/1."), f"not a status line: {line[:80]!r}"
        status, head = int(line.split()[1]), line
        while (field := self.stream.readline(70000)) not in (b"\r\n", b""):
            head += field
        assert field == b"\r\n", f"head cut short: {head[-200:]!r}"
        answer = Answer(status, head, b"")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return answer
        if lengths := answer.header("content-length"):
            answer.body = self.stream.read(int(lengths[0]))
            assert len(answer.body) == int(lengths[0]), "body cut short"
        elif any("chunked" in v.lower() for v in answer.header("transfer-encoding")):
            while size := int(self.stream.readline().split(b";")[0], 16):
                answer.body += self.stream.read(size)
                self.stream.readline()
            self.stream.readline()
        else:
            answer.body = self.stream.read()  # delimited by the connection's end
        return answer

    def final(self) -> Answer | None:
        """The next final answer (interim 1xx skipped)."""
        while (answer := self.answer()) is not None and answer.status < 200:
            pass
        return answer

    def closed(self, wait: float = 1.0) -> bool:
        """True: the server closed (EOF); False: still open and quiet after ``wait``. Stray bytes fail."""
        self.sock.settimeout(wait)
        try:
            extra = self.stream.read1(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(WAIT)
        assert extra == b"", f"bytes after the last answer: {extra[:120]!r}"
        return True

    def reset(self) -> None:
        """Close with an RST (SO_LINGER 0), as a client killed mid-answer."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@contextmanager
def raw(port: int, timeout: float = WAIT):
    conn = Raw(port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(condition, seconds: float = 30.0) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def returns(call, bound: float = 60.0) -> bool:
    """Whether ``call`` returns at all (a guard against a hang, far above the 2 s stop() allows itself; not a
    timing)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(bound)
    return not thread.is_alive()


def store_objects(server: EmbeddedS3) -> None:
    s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    if BUCKET not in server._backend().buckets:
        s3.create_bucket(Bucket=BUCKET)
    for key, body in ((SMALL, SMALL_BODY), (EMPTY, b""), (LARGE, LARGE_BODY)):
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/jpeg")


@pytest.fixture(scope="module")
def server():
    started = EmbeddedS3().start()
    try:
        store_objects(started)
        yield started
    finally:
        started._backend().buckets.pop(BUCKET, None)
        started.stop()


@pytest.fixture
def fresh():
    """A server of its own, for the cases that stop it (the module's server keeps the objects)."""
    started = EmbeddedS3().start()
    try:
        store_objects(started)
        yield started
    finally:
        started.stop()


def port_of(server: EmbeddedS3) -> int:
    return server._server.server_address[1]


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Exception occurred" not in err, err[-2000:]


# --- request framing on a kept connection ----------------------------------------------------------------

def test_a_put_with_a_body_after_a_plain_get_is_moto_s_and_its_body_is_never_a_request(server):
    put_body = request("GET", f"/{BUCKET}/{SMALL}")  # a body that looks like a request
    with raw(port_of(server)) as conn:
        conn.send(request() + request("PUT", f"/{BUCKET}/k/put.bin", f"Content-Length: {len(put_body)}",
                                      body=put_body) + request())
        first, second = conn.answer(), conn.answer()
        assert (first.status, first.body, first.closes) == (200, SMALL_BODY, False)
        assert second.status == 200 and second.closes
        assert conn.closed()  # the third request went with the connection (werkzeug drained it)
    assert server.read_object(BUCKET, "k/put.bin")[0] == put_body


@pytest.mark.parametrize("shape", ["length", "chunked"])
def test_a_get_with_a_body_after_a_plain_get_is_moto_s_and_closes(server, shape):
    body = b"versionId=nope"
    framing = ([f"Content-Length: {len(body)}"], body) if shape == "length" else (
        ["Transfer-Encoding: chunked"], b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    with raw(port_of(server)) as conn:
        conn.send(request() + request("GET", f"/{BUCKET}/{SMALL}", *framing[0], body=framing[1]) + request())
        assert conn.answer().status == 200
        second = conn.answer()
        assert second.closes and second.status != 400
        assert conn.closed()


def test_a_put_with_expect_100_continue_on_a_kept_connection(server):
    with raw(port_of(server)) as conn:
        assert conn.send(request()).answer().body == SMALL_BODY
        conn.send(request("PUT", f"/{BUCKET}/k/expect.bin", "Expect: 100-continue", "Content-Length: 5"))
        interim = conn.answer()
        assert interim.status == 100  # the client may send its body now
        conn.send(b"12345")
        final = conn.final()
        assert final.status == 200 and final.closes and conn.closed()
    assert server.read_object(BUCKET, "k/expect.bin")[0] == b"12345"


def test_head_and_delete_on_a_kept_connection(server):
    server.put_objects(BUCKET, [("k/delete-me", b"x")])
    with raw(port_of(server)) as conn:
        conn.send(request() + request("HEAD"))
        assert conn.answer().status == 200
        head = conn.answer(head_only=True)  # a HEAD's Content-Length announces no body on the wire
        assert head.status == 200 and head.header("content-length") == [str(len(SMALL_BODY))] and head.closes
        assert conn.closed()
    with raw(port_of(server)) as conn:
        conn.send(request() + request("DELETE", f"/{BUCKET}/k/delete-me"))
        assert conn.answer().status == 200
        assert conn.answer().status == 204 and conn.closed()
    with raw(port_of(server)) as conn:
        gone = conn.send(request("GET", f"/{BUCKET}/k/delete-me")).answer()
        assert gone.status == 404 and b"NoSuchKey" in gone.body and gone.closes


def test_garbage_after_a_plain_get_is_a_400_and_the_end_of_the_connection(server, capfd):
    with raw(port_of(server)) as conn:
        conn.send(request() + b"GARBAGE\r\n\r\n")
        assert conn.answer().status == 200
        conn.stream.read()  # http.server's refusal (a bare page: it takes a one-word line for HTTP/0.9), then the end
    with raw(port_of(server)) as conn:
        assert conn.send(request()).answer().status == 200  # the server serves on
    no_traceback(capfd.readouterr().err)


def test_a_request_line_over_64_kib_after_a_plain_get(server):
    with raw(port_of(server)) as conn:
        conn.send(request() + b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
        assert conn.answer().status == 200
        assert conn.answer().status == 414 and conn.closed()


def test_a_header_section_cut_short_by_a_half_close(server):
    with raw(port_of(server)) as conn:
        conn.send(request() + request()[:60])
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.answer().status == 200
        rest = conn.answer()  # the cut request: answered as far as it goes, or nothing, then the end
        assert rest is None or rest.closes or rest.status >= 400
        assert conn.closed(wait=5.0)


def test_a_half_closed_client_gets_its_answer_and_then_the_end(server):
    with raw(port_of(server)) as conn:
        conn.send(request() + request())
        conn.sock.shutdown(socket.SHUT_WR)
        assert [conn.answer().body, conn.answer().body] == [SMALL_BODY, SMALL_BODY]
        assert conn.closed(wait=5.0)


@pytest.mark.parametrize("framing", [
    ["Content-Length: {n}", "Content-Length: 0"],  # two lengths: the last one won, the body went unread
    ["Content-Length : {n}"],  # a field the parser drops (space before the colon): the body went unread
    ["User-Agent: x", " Content-Length: {n}"],  # a continuation line, folded into the field before
])
def test_a_body_the_plain_check_cannot_see_is_never_read_as_the_next_request(server, framing):
    smuggled = request("DELETE", f"/{BUCKET}/{SMALL}")
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{SMALL}", *(f.format(n=len(smuggled)) for f in framing)) + smuggled)
        conn.sock.settimeout(2.0)
        wire = b""
        try:  # all of it before judging: a smuggled request is then done, not racing the restore below
            while chunk := conn.sock.recv(65536):
                wire += chunk
            ended = True
        except TimeoutError:
            ended = False
    try:
        # one answer (moto's, or a refusal), and the end of the connection
        assert len(re.findall(rb"(?m)^HTTP/1\.1 \d{3}", wire)) <= 1 and b"onnection: close" in wire and ended
        assert server.read_object(BUCKET, SMALL)[0] == SMALL_BODY  # the body was never a DELETE
    finally:
        store_objects(server)


def test_a_request_sent_a_byte_at_a_time_on_a_kept_connection(server):
    with raw(port_of(server)) as conn:
        assert conn.send(request()).answer().status == 200
        for byte in request():
            conn.sock.send(bytes([byte]))
        assert conn.answer().body == SMALL_BODY and not conn.closed(wait=0.3)


def test_a_hundred_pipelined_plain_gets_are_answered_in_order(server):
    keys = [SMALL, EMPTY] * 50
    with raw(port_of(server)) as conn:
        conn.send(b"".join(request("GET", f"/{BUCKET}/{key}") for key in keys))
        assert [conn.answer().body for _ in keys] == [SMALL_BODY if k == SMALL else b"" for k in keys]
        assert not conn.closed(wait=0.3)


# --- protocol versions and Connection tokens -------------------------------------------------------------

def test_http_1_0_keep_alive_is_answered_with_keep_alive(server):
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{SMALL}", "Connection: keep-alive", version="HTTP/1.0"))
        first = conn.answer()
        # an HTTP/1.0 client keeps a connection only when the answer says so; otherwise it waits for the end
        assert first.status == 200 and [v.lower() for v in first.header("connection")] == ["keep-alive"]
        conn.send(request("GET", f"/{BUCKET}/{SMALL}", version="HTTP/1.0"))  # no keep-alive now: the last
        second = conn.answer()
        assert second.body == SMALL_BODY and second.closes and conn.closed()


@pytest.mark.parametrize("connection", [
    ["CLOSE"], ["Close"], ["keep-alive, close"], ["close, TE"], ["keep-alive", "close"], ["TE", "close"],
])
def test_any_close_token_closes_after_a_plain_get(server, connection):
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{SMALL}", *(f"Connection: {c}" for c in connection)))
        answer = conn.answer()
        assert answer.body == SMALL_BODY and answer.closes and conn.closed()


def test_an_http_0_9_request_line_gets_the_body_alone_and_the_end(server):
    with raw(port_of(server)) as conn:
        conn.send(f"GET /{BUCKET}/{SMALL}\r\n".encode() + request()[request().index(b"\r\n") + 2:])
        assert conn.stream.read() == SMALL_BODY  # HTTP/0.9: no status line, no headers


def test_an_http_2_request_line_is_refused_and_closed(server):
    with raw(port_of(server)) as conn:
        assert conn.send(request() + request(version="HTTP/2.0")).answer().status == 200
        assert b"505" in conn.stream.read()  # http.server's refusal (a bare page), then the end


# --- answers ---------------------------------------------------------------------------------------------

def test_a_304_carries_no_body_and_the_next_get_follows_it(server):
    etag = server.read_object(BUCKET, SMALL)[1]
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{SMALL}", f"If-None-Match: {etag}") + request())
        not_modified = conn.answer()
        assert not_modified.status == 304 and not not_modified.closes
        assert conn.answer().body == SMALL_BODY and not conn.closed(wait=0.3)


def test_an_empty_object_twice_on_one_connection(server):
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{EMPTY}") * 2 + request())
        first, second, third = conn.answer(), conn.answer(), conn.answer()
        assert first.header("content-length") == ["0"] and (first.body, second.body) == (b"", b"")
        assert third.body == SMALL_BODY and not conn.closed(wait=0.3)


def test_a_20_mib_object_twice_on_one_connection(server):
    with raw(port_of(server)) as conn:
        conn.send(request("GET", f"/{BUCKET}/{LARGE}") * 2)
        for _ in range(2):
            assert hashlib.sha256(conn.answer().body).digest() == hashlib.sha256(LARGE_BODY).digest()
        assert not conn.closed(wait=0.3)


@contextmanager
def moto_alone():
    """moto's S3 app served by werkzeug with moto's own handler (over the same store): moto's own words."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    plain = make_server("127.0.0.1", 0, create_backend_app("s3"), threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=plain.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield plain.server_address[1]
    finally:
        plain.shutdown()
        thread.join()
        plain.server_close()


def outcome(port: int, key: str) -> tuple:
    """(status, body, the x-amz-meta-odd header) of one GET sent with the write side then closed, or
    'nothing' when the connection ended without an answer."""
    with raw(port) as conn:
        conn.send(request("GET", f"/{BUCKET}/{key}"))
        conn.sock.shutdown(socket.SHUT_WR)
        answer = conn.answer()
        if answer is None:
            return ("nothing",)
        return answer.status, answer.body, answer.header("x-amz-meta-odd")


@pytest.mark.parametrize("value", ["café", "ж", "a\tb", "  lead and trail  ", "x: y", "\x7f\x01", "",
                                   "=?UTF-8?B?0LY=?="])
def test_odd_metadata_is_answered_as_moto_answers_it_without_a_traceback(server, value, capfd):
    key = "k/odd-metadata"
    stored = server._backend().put_object(BUCKET, key, b"odd")
    stored.set_metadata({"Content-Type": "image/jpeg", "x-amz-meta-odd": value})
    try:
        with moto_alone() as moto:
            capfd.readouterr()
            ours = outcome(port_of(server), key)
            err = capfd.readouterr().err
            assert ours == outcome(moto, key)
        assert "s3_get.py" not in err and "Exception occurred" not in err, err[-2000:]
        with raw(port_of(server)) as conn:  # and whatever it was, the next request on the connection is whole
            conn.send(request("GET", f"/{BUCKET}/{key}") + request())
            answers = []
            while (answer := conn.answer()) is not None:
                answers.append(answer)
                if answer.closes or len(answers) == 2:
                    break
            assert answers == [] or answers[-1].closes or answers[-1].body == SMALL_BODY
    finally:
        server._backend().delete_object(BUCKET, key)


def test_an_object_overwritten_or_deleted_between_requests_on_one_connection(server):
    key = "k/changing"
    server.put_objects(BUCKET, [(key, b"first")])
    with raw(port_of(server)) as conn:
        assert conn.send(request("GET", f"/{BUCKET}/{key}")).answer().body == b"first"
        server.put_objects(BUCKET, [(key, b"second, longer")])
        second = conn.send(request("GET", f"/{BUCKET}/{key}")).answer()
        assert second.body == b"second, longer" and second.header("content-length") == ["14"]
        server._backend().delete_object(BUCKET, key)
        gone = conn.send(request("GET", f"/{BUCKET}/{key}")).answer()
        assert gone.status == 404 and gone.closes and conn.closed()


def test_a_bucket_deleted_while_a_connection_is_kept(server):
    other = "keep-alive-hostile-gone"
    store = server._backend()
    store.create_bucket(other, LOCAL_REGION)
    server.put_objects(other, [("k", b"v")])
    try:
        with raw(port_of(server)) as conn:
            conn.send(request("GET", f"/{other}/k"))
            assert conn.answer().status in (200, 404)  # (no content type stored: moto's to answer)
            store.delete_object(other, "k")
            store.delete_bucket(other)
            gone = conn.send(request("GET", f"/{other}/k")).answer()
            assert gone.status == 404 and b"NoSuchBucket" in gone.body and gone.closes and conn.closed()
    finally:
        store.buckets.pop(other, None)


# --- stop, lifecycle, concurrency ------------------------------------------------------------------------

def test_a_kept_connection_is_not_served_after_stop(fresh):
    with raw(port_of(fresh)) as conn:
        assert conn.send(request()).answer().status == 200
        fresh.stop()
        try:
            conn.send(request())
        except OSError:
            return  # refused outright: not served
        assert conn.answer() is None  # the end of the connection, not an answer from a stopped server


def test_stop_with_200_idle_kept_connections(fresh):
    before_threads, before_fds = set(handler_threads()), open_fds()
    conns = [Raw(port_of(fresh)) for _ in range(220)]  # 200 kept after an answer, 20 that never send a byte
    try:
        for conn in conns[:200]:
            conn.send(request())
        for conn in conns[:200]:
            assert conn.answer().status == 200
        assert settle(lambda: len(set(handler_threads()) - before_threads) >= 220)
        assert returns(fresh.stop)
        assert settle(lambda: set(handler_threads()) <= before_threads), len(set(handler_threads()) - before_threads)
        assert all(conn.closed(wait=2.0) for conn in conns)  # each told: EOF, not silence
    finally:
        for conn in conns:
            conn.close()
    assert settle(lambda: open_fds() <= before_fds + 2), (open_fds(), before_fds)
    again = EmbeddedS3().start()
    try:
        with raw(port_of(again)) as conn:
            assert conn.send(request()).answer().body == SMALL_BODY  # (the store is moto's, process-wide)
    finally:
        again.stop()


def test_stop_while_clients_keep_asking(fresh, capfd):
    before, running, failures = set(handler_threads()), threading.Event(), []
    running.set()

    def client() -> None:
        while running.is_set():
            try:
                with raw(port_of(fresh), timeout=3.0) as conn:
                    while running.is_set():
                        answer = conn.send(request()).answer()
                        if answer is None:
                            break
                        if answer.body != SMALL_BODY:
                            failures.append(answer.status)
            except (OSError, AssertionError):
                pass  # the server went away mid-request: expected once stop() runs
    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.5)
        assert returns(fresh.stop)
    finally:
        running.clear()
        for thread in clients:
            thread.join()
    assert failures == [] and settle(lambda: set(handler_threads()) <= before)
    no_traceback(capfd.readouterr().err)


def test_a_kept_connection_reset_while_idle(server, capfd):
    before = set(handler_threads())
    conn = Raw(port_of(server))
    assert conn.send(request()).answer().status == 200
    conn.reset()
    assert settle(lambda: set(handler_threads()) <= before)
    with raw(port_of(server)) as conn:
        assert conn.send(request()).answer().body == SMALL_BODY
    no_traceback(capfd.readouterr().err)


def test_stop_while_a_client_never_reads_a_large_answer(fresh):
    before = set(handler_threads())
    with raw(port_of(fresh)) as conn:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.send(request("GET", f"/{BUCKET}/{LARGE}"))
        time.sleep(0.5)  # the server is now blocked writing 20 MiB nobody reads
        assert returns(fresh.stop)
        assert settle(lambda: set(handler_threads()) <= before), "a thread still writing after stop()"


def test_botocore_after_the_server_closed_its_pooled_connections(monkeypatch):
    from rcyc_cli.local.emulator import s3_get

    answered = []
    monkeypatch.setattr(s3_get, "plain_get", lambda *a, real=s3_get.plain_get: answered.append(real(*a)) or answered[-1])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    first = EmbeddedS3(listener).start()
    listener.close()
    try:
        store_objects(first)
        s3 = s3_client(first.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        for _ in range(3):  # pooled: kept by plain GETs, closed by moto's answers in between
            assert s3.get_object(Bucket=BUCKET, Key=SMALL)["Body"].read() == SMALL_BODY
            s3.head_object(Bucket=BUCKET, Key=SMALL)
            s3.put_object(Bucket=BUCKET, Key="k/boto.txt", Body=b"b")
            assert s3.get_object(Bucket=BUCKET, Key=SMALL)["Body"].read() == SMALL_BODY
        assert sum(found is not None for found in answered) == 6  # botocore's GETs are the plain shape
    finally:
        first.stop()
    second = EmbeddedS3(socket.create_server(("127.0.0.1", port))).start()  # the same address, a new server
    try:
        assert s3.get_object(Bucket=BUCKET, Key=SMALL)["Body"].read() == SMALL_BODY
    finally:
        second.stop()


def test_sixteen_threads_get_and_put_on_one_boto3_client(server):
    s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    failures: list = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                key = f"k/thread-{n}-{i % 3}"
                s3.put_object(Bucket=BUCKET, Key=key, Body=f"{n}:{i}".encode(), ContentType="image/jpeg")
                if s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() != f"{n}:{i}".encode():
                    failures.append((n, i))
                if s3.get_object(Bucket=BUCKET, Key=SMALL)["Body"].read() != SMALL_BODY:
                    failures.append((n, i, "shared"))
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- resources -------------------------------------------------------------------------------------------

def test_two_thousand_gets_on_one_kept_connection_grow_nothing(server):
    with raw(port_of(server)) as conn:
        for _ in range(200):
            assert conn.send(request()).answer().status == 200
        threads, fds = threading.active_count(), open_fds()
        for _ in range(1800):
            assert conn.send(request()).answer().body == SMALL_BODY
        assert (threading.active_count(), open_fds()) == (threads, fds)


def test_connections_closed_by_their_clients_leave_no_thread(server):
    before_threads, before_fds = set(handler_threads()), open_fds()
    for _ in range(300):
        with raw(port_of(server)) as conn:
            assert conn.send(request()).answer().status == 200
    assert settle(lambda: set(handler_threads()) <= before_threads)
    assert settle(lambda: open_fds() <= before_fds)


# --- errors ----------------------------------------------------------------------------------------------

def test_an_exception_in_plain_get_is_moto_s_answer(server, monkeypatch, capfd):
    from rcyc_cli.local.emulator import s3_get

    def broken(environ, backend):
        raise RuntimeError("the store moved")
    monkeypatch.setattr(s3_get, "plain_get", broken)
    with raw(port_of(server)) as conn:
        answer = conn.send(request()).answer()
        assert (answer.status, answer.body) == (200, SMALL_BODY) and answer.closes and conn.closed()
    no_traceback(capfd.readouterr().err)


@pytest.mark.parametrize("extra", [[], ["Range: bytes=0-20000000"]], ids=["plain", "moto"])
def test_a_client_gone_mid_answer_leaves_no_traceback_and_the_server_serves_on(server, capfd, extra):
    for _ in range(3):
        conn = Raw(port_of(server))
        try:
            conn.send(request("GET", f"/{BUCKET}/{LARGE}", *extra))
            conn.stream.read(1000)
        finally:
            conn.reset()
    with raw(port_of(server)) as conn:
        assert conn.send(request()).answer().body == SMALL_BODY
    time.sleep(0.3)  # the writing threads meet the reset
    no_traceback(capfd.readouterr().err)
