"""The embedded S3 answers the function's plain GetObject itself (moto's request handling cost ~2 ms of the
stack's CPU a GET): the same status, body and headers as moto's own answer for tricky keys, versions,
metadata, checksums and If-None-Match; anything else is moto's to answer. Each answer is compared over real
HTTP to the running server, on a connection kept open after a plain GET and closed after moto's answers."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import urllib.parse
from contextlib import contextmanager

import pytest

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.local.emulator.s3_get import keep_alive_gets, plain_get

BUCKET, PLAIN_BUCKET = "get-test", "get-test-unversioned"
KEYS = ["photos/a.jpg", "photos/b&c <d> \"e\" 'f'.jpg", "photos/with space+plus.jpg", "photos/ünïcødé/ж.jpg",
        "photos%2Fencoded.jpg", "results/r.json", "~tilde/x.jpg"]
SIGNED = {"Host": "127.0.0.1:9", "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/s3/aws4_request, "
          "SignedHeaders=host, Signature=0", "X-Amz-Date": "20261206T000000Z", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
# differ from answer to answer, or by design: a plain GET keeps its connection, moto's answers close theirs
ANY_ANSWER = {"x-amzn-requestid", "date", "server", "connection"}


class OverHttp:
    """What the tests ask of werkzeug's test client, asked of a running server over one HTTP connection (the
    path sent as given: its escapes are the key's)."""

    def __init__(self, endpoint: str):
        self.address = urllib.parse.urlsplit(endpoint).netloc
        self.connection = http.client.HTTPConnection(self.address, timeout=10)

    def get(self, path, query_string="", headers=None, environ_overrides=None, data=None):
        raw = (environ_overrides or {}).get("RAW_URI") or path + (f"?{query_string}" if query_string else "")
        self.connection.putrequest("GET", raw, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            self.connection.putheader(name, value)
        if data is not None:
            self.connection.putheader("Content-Length", str(len(data)))
        self.connection.endheaders(data)
        reply = self.connection.getresponse()
        reply.status_code, reply.data = reply.status, reply.read()
        return reply


@contextmanager
def serving(app, handler):
    """A werkzeug server of ``app`` with request handler ``handler`` on a free port, stopped at the end."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture(scope="module")
def apps():
    """(moto, the embedded S3): moto's S3 app as werkzeug serves it with moto's own handler, and the embedded S3,
    over one store, each asked over HTTP."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

    server = EmbeddedS3().start()
    try:
        s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        for bucket in (BUCKET, PLAIN_BUCKET):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for n, key in enumerate(KEYS):
            for bucket in (BUCKET, PLAIN_BUCKET):  # a checksum (boto3's default) on every other object
                s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (n + 1), Metadata={"rcyc-n": str(n)},
                              **({"ChecksumAlgorithm": "SHA256"} if n % 2 else {}),
                              **({"ContentType": "application/json"} if key.endswith(".json") else {}))
        server.put_objects(BUCKET, [("direct/stored.jpg", b"stored in the store")])  # as a warm run's images
        s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=b"a newer version")
        s3.put_object(Bucket=BUCKET, Key="photos/gone.jpg", Body=b"deleted")
        s3.delete_object(Bucket=BUCKET, Key="photos/gone.jpg")  # a delete marker on top
        with serving(create_backend_app("s3"), MotoRequestHandler) as moto:
            yield OverHttp(moto), OverHttp(server.endpoint_url), s3, server
    finally:
        for bucket in (BUCKET, PLAIN_BUCKET):
            server._backend().buckets.pop(bucket, None)
        server.stop()


def get(client: OverHttp, bucket: str, key: str, query: str = "", **headers):
    path = f"/{bucket}/{urllib.parse.quote(key, safe='/~')}"
    reply = client.get(path, query_string=query, headers={**SIGNED, **headers},
                       environ_overrides={"RAW_URI": path + (f"?{query}" if query else "")})
    body = re.sub(rb"<(RequestId|HostId)>[^<]*</(RequestId|HostId)>", b"", reply.data)  # an error's own ids
    return reply.status_code, body, {k.lower(): v for k, v in reply.headers.items() if k.lower() not in ANY_ANSWER}


def environ(bucket: str, key: str, query: str = "", **headers) -> dict:
    path = f"/{bucket}/{urllib.parse.quote(key, safe='/~')}"
    return {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "RAW_URI": path + (f"?{query}" if query else ""),
            **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in {**SIGNED, **headers}.items()}}


@pytest.mark.parametrize("bucket", [BUCKET, PLAIN_BUCKET])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("headers", [{}, {"x-amz-checksum-mode": "ENABLED"}, {"If-None-Match": "ETAG"},
                                     {"If-None-Match": '"not-the-etag"'}])
def test_each_answer_is_the_one_moto_would_give(apps, bucket, key, headers):
    moto, fast, s3, server = apps
    if headers.get("If-None-Match") == "ETAG":
        headers = {"If-None-Match": s3.head_object(Bucket=bucket, Key=key)["ETag"]}
    assert plain_get(environ(bucket, key, **headers), server._backend) is not None  # answered from the store
    assert get(fast, bucket, key, **headers) == get(moto, bucket, key, **headers)


def test_an_object_written_into_the_store_is_answered_too(apps):
    moto, fast, _, _ = apps
    status, body, _ = get(fast, BUCKET, "direct/stored.jpg")
    assert (status, body) == (200, b"stored in the store") and get(fast, BUCKET, "direct/stored.jpg") == get(moto, BUCKET, "direct/stored.jpg")


def test_boto3_reads_the_same_objects_through_the_fast_answer(apps):
    _, _, s3, _ = apps
    for n, key in enumerate(KEYS):
        answer = s3.get_object(Bucket=PLAIN_BUCKET, Key=key)  # botocore checks the SHA256 where there is one
        assert answer["Body"].read() == b"x" * (n + 1) and answer["Metadata"] == {"rcyc-n": str(n)}


@pytest.mark.parametrize("bucket, key, query, headers", [
    (BUCKET, "photos/a.jpg", "versionId=null", {}),
    (BUCKET, "photos/a.jpg", "partNumber=1", {}),
    (BUCKET, "photos/a.jpg", "response-content-type=text%2Fplain", {}),
    (BUCKET, "photos/a.jpg", "", {"Range": "bytes=0-1"}),
    (BUCKET, "photos/a.jpg", "", {"If-Match": '"x"'}),
    (BUCKET, "photos/a.jpg", "", {"If-Modified-Since": "Sun, 06 Dec 2026 00:00:00 GMT"}),
    (BUCKET, "photos/a.jpg", "", {"Origin": "http://example.invalid"}),
    (BUCKET, "photos/gone.jpg", "", {}),  # a delete marker: moto's 404
    (BUCKET, "photos/none.jpg", "", {}),  # moto's NoSuchKey
    ("no-such-bucket", "k", "", {}),  # moto's NoSuchBucket
    (BUCKET, "", "", {}),  # no key: a bucket request
])
def test_any_other_request_is_moto_s(apps, bucket, key, query, headers):
    moto, fast, _, server = apps
    assert plain_get(environ(bucket, key, query, **headers), server._backend) is None
    assert get(fast, bucket, key, query, **headers) == get(moto, bucket, key, query, **headers)


def test_an_unsigned_request_or_a_bucket_with_a_policy_is_moto_s(apps):
    _, _, s3, server = apps
    unsigned = {k: v for k, v in environ(BUCKET, "photos/a.jpg").items() if k != "HTTP_AUTHORIZATION"}
    assert plain_get(unsigned, server._backend) is None  # moto decides what an anonymous reader may see
    s3.put_bucket_policy(Bucket=PLAIN_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": f"arn:aws:s3:::{PLAIN_BUCKET}"}]}))
    try:
        assert plain_get(environ(PLAIN_BUCKET, "photos/a.jpg"), server._backend) is None
    finally:
        s3.delete_bucket_policy(Bucket=PLAIN_BUCKET)


@pytest.mark.parametrize("raw_key", ["%FF.jpg", "photos%2F%C3", "%ED%A0%80"])
def test_a_path_that_is_not_utf_8_is_moto_s(apps, raw_key):
    _, _, _, server = apps
    assert plain_get({**environ(BUCKET, "x"), "RAW_URI": f"/{BUCKET}/{raw_key}"}, server._backend) is None


@pytest.mark.parametrize("raw_path, host", [
    (f"//{PLAIN_BUCKET}/photos/a.jpg", "127.0.0.1:9"),  # a path with "//" is for moto (and werkzeug) to read
    (f"//{PLAIN_BUCKET}/{PLAIN_BUCKET}/photos/a.jpg", "127.0.0.1:9"),
    (f"/{PLAIN_BUCKET}/photos/a.jpg", "127.0.0.1:"),  # moto: a virtual-hosted address (bucket "127")
    (f"/{PLAIN_BUCKET}/photos/a.jpg", "127.0.0.1:x"),
])
def test_a_path_or_host_moto_reads_otherwise_is_moto_s(apps, raw_path, host):
    moto, fast, _, server = apps
    assert plain_get({**environ(PLAIN_BUCKET, "x"), "RAW_URI": raw_path, "HTTP_HOST": host}, server._backend) is None

    def answer(client):
        reply = client.get(raw_path, headers={**SIGNED, "Host": host}, environ_overrides={"RAW_URI": raw_path})
        return reply.status_code, reply.data.count(b"<Key>"), reply.data[:60]
    assert answer(fast) == answer(moto)


def test_a_streaming_payload_hash_is_moto_s(apps):
    _, _, _, server = apps  # moto reads a chunked body it has not got (a 500): not ours to answer with the object
    streaming = environ(PLAIN_BUCKET, "photos/a.jpg", **{"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    assert plain_get(streaming, server._backend) is None


def test_cross_account_lock_or_bucket_logging_is_moto_s(apps, monkeypatch):
    moto, fast, s3, server = apps
    monkeypatch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")  # a request signed for cn-north-1: moto's 403
    assert plain_get(environ(PLAIN_BUCKET, "photos/a.jpg"), server._backend) is None
    china = {"Authorization": SIGNED["Authorization"].replace("us-east-1", "cn-north-1")}
    assert get(fast, PLAIN_BUCKET, "photos/a.jpg", **china) == get(moto, PLAIN_BUCKET, "photos/a.jpg", **china)
    monkeypatch.delenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS")
    logs = "get-test-logs"
    s3.create_bucket(Bucket=logs)
    s3.put_bucket_acl(Bucket=logs, ACL="log-delivery-write")
    s3.put_bucket_logging(Bucket=PLAIN_BUCKET, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": logs, "TargetPrefix": "l/"}})
    try:  # moto writes a log object for each request: so must a GET answered here (it is moto's)
        assert plain_get(environ(PLAIN_BUCKET, "photos/a.jpg"), server._backend) is None
    finally:
        s3.put_bucket_logging(Bucket=PLAIN_BUCKET, BucketLoggingStatus={})
        server._backend().buckets.pop(logs, None)


def test_an_object_moto_would_answer_otherwise_is_moto_s(apps):
    moto, fast, _, server = apps
    store = server._backend()
    untyped = store.put_object(PLAIN_BUCKET, "odd/untyped", b"x")  # no content type: moto's serializer adds one
    untyped.set_metadata({"x-amz-meta-a": "b"}, replace=True)
    broken = store.put_object(PLAIN_BUCKET, "odd/line-break", b"x")  # moto's Response refuses the value (a 500)
    broken.set_metadata({"x-amz-meta-a": "b\r\nx-injected: 1"})
    try:
        for key in ("odd/untyped", "odd/line-break"):
            assert plain_get(environ(PLAIN_BUCKET, key), server._backend) is None
        assert get(fast, PLAIN_BUCKET, "odd/untyped") == get(moto, PLAIN_BUCKET, "odd/untyped")
    finally:
        for key in ("odd/untyped", "odd/line-break"):
            store.delete_object(PLAIN_BUCKET, key)


def test_an_object_overwritten_while_read_is_moto_s_to_answer(apps):
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

    moto, _, _, server = apps
    store = server._backend()
    store.put_object(PLAIN_BUCKET, "odd/racing", b"old")

    class Racing:  # the store, with the object overwritten (the old one's buffer closed) between lookup and read
        buckets = store.buckets

        @staticmethod
        def get_object(bucket, key):
            found = store.get_object(bucket, key)
            store.put_object(bucket, key, b"new")
            return found

    try:
        with pytest.raises(ValueError):
            plain_get(environ(PLAIN_BUCKET, "odd/racing"), lambda: Racing)
        with serving(create_backend_app("s3"), keep_alive_gets(MotoRequestHandler, lambda: Racing)) as endpoint:
            racing = get(OverHttp(endpoint), PLAIN_BUCKET, "odd/racing")
        assert racing == get(moto, PLAIN_BUCKET, "odd/racing")  # no 500: moto's "new"
    finally:
        store.delete_object(PLAIN_BUCKET, "odd/racing")


def test_a_get_while_moto_records_requests_is_moto_s(apps):
    from moto.moto_api import recorder

    _, _, _, server = apps
    recorder.start_recording()  # moto writes each request it answers into its recording: so must a GET answered here
    try:
        assert plain_get(environ(PLAIN_BUCKET, "photos/a.jpg"), server._backend) is None
    finally:
        recorder.stop_recording()
    assert plain_get(environ(PLAIN_BUCKET, "photos/a.jpg"), server._backend) is not None


@pytest.mark.parametrize("headers, body", [
    ({"Authorization": "AWS4-HMAC-SHA256"}, None),  # moto reads the region from the credential scope: a 500
    ({"Authorization": "AWS4-HMAC-SHA256 Credential=local/20261206"}, None),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"versionId=nope"),  # moto: the form is the query
])
def test_a_get_moto_reads_otherwise_is_moto_s(apps, headers, body):
    moto, fast, _, server = apps
    extra = {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": headers["Content-Type"]} if body else {}
    plain = {**environ(PLAIN_BUCKET, "photos/a.jpg"), **extra,
             **{"HTTP_" + k.upper(): v for k, v in headers.items() if k == "Authorization"}}
    assert plain_get(plain, server._backend) is None
    if body:
        path = f"/{PLAIN_BUCKET}/photos/a.jpg"
        answers = [client.get(path, headers={**SIGNED, **headers}, data=body, environ_overrides={"RAW_URI": path})
                   for client in (fast, moto)]
        assert answers[0].status_code == answers[1].status_code == 404  # NoSuchVersion


def raw_exchange(endpoint: str, request: bytes, answers: int = 1) -> tuple[list[bytes], bool]:
    """Send ``request`` (one or more requests, as bytes) on a fresh connection; returns the ``answers`` heads
    read (bodies skipped by their Content-Length) and whether the server then closed the connection."""
    sock = socket.create_connection(urllib.parse.urlsplit(endpoint).netloc.split(":"), timeout=10)
    try:
        sock.sendall(request)
        stream, heads = sock.makefile("rb"), []
        for _ in range(answers):
            head = b""
            while (line := stream.readline()) not in (b"\r\n", b""):
                head += line
            heads.append(head)
            if not line:
                break  # closed before this answer
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            stream.read(int(length.group(1)) if length and not head.startswith(b"HTTP/1.1 304") else 0)
        sock.settimeout(1.0)
        try:
            closed = stream.read(1) == b""
        except TimeoutError:
            closed = False  # still open, waiting for the next request
        return heads, closed
    finally:
        sock.close()


def plain_request(key: str = "photos/a.jpg", *extra: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"GET /{PLAIN_BUCKET}/{urllib.parse.quote(key)} {version}", *(f"{k}: {v}" for k, v in SIGNED.items()), *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_plain_get_keeps_its_connection_for_the_next_request(apps):
    _, fast, _, _ = apps
    client = OverHttp(f"http://{fast.address}")
    first = get(client, PLAIN_BUCKET, "photos/a.jpg")
    sock = client.connection.sock
    assert sock is not None  # not closed after the answer: http.client closes on "Connection: close"
    for _ in range(3):
        assert get(client, PLAIN_BUCKET, "photos/a.jpg") == first
        assert client.connection.sock is sock  # the same connection, no reconnect
    heads, closed = raw_exchange(f"http://{fast.address}", plain_request())
    assert heads[0].startswith(b"HTTP/1.1 200") and b"connection: close" not in heads[0].lower() and not closed


def test_two_plain_gets_sent_at_once_are_both_answered_in_order(apps):
    _, fast, _, _ = apps
    heads, closed = raw_exchange(f"http://{fast.address}", plain_request("photos/a.jpg") + plain_request("results/r.json"), 2)
    assert [re.search(rb"(?i)content-type: *(\S+)", head).group(1) for head in heads] == [b"binary/octet-stream", b"application/json"]
    assert not closed


@pytest.mark.parametrize("request_bytes", [
    plain_request("photos/a.jpg", "Connection: close"),  # the client asks to close
    plain_request("photos/a.jpg", version="HTTP/1.0"),  # HTTP/1.0: closed unless asked to keep it
])
def test_a_plain_get_closes_when_the_client_asks_or_speaks_http_1_0(apps, request_bytes):
    _, fast, _, _ = apps
    heads, closed = raw_exchange(f"http://{fast.address}", request_bytes)
    assert b" 200 " in heads[0].split(b"\r\n")[0] and b"connection: close" in heads[0].lower() and closed


@pytest.mark.parametrize("request_bytes", [
    # a body (a form moto reads as the query): moto's answer, and the body is never read as a next request
    plain_request("photos/a.jpg", "Content-Type: application/x-www-form-urlencoded", "Content-Length: 14")[:-2]
    + b"\r\nversionId=nope" + plain_request("photos/a.jpg"),
    plain_request("photos/none.jpg") + plain_request("photos/a.jpg"),  # moto's NoSuchKey
    plain_request("photos/a.jpg", "Range: bytes=0-0") + plain_request("photos/a.jpg"),  # not the plain shape
])
def test_a_request_moto_answers_closes_its_connection(apps, request_bytes):
    _, fast, _, _ = apps
    heads, closed = raw_exchange(f"http://{fast.address}", request_bytes)
    assert b"connection: close" in heads[0].lower() and closed and not heads[0].startswith(b"HTTP/1.1 200")


def test_many_clients_at_once_each_on_their_own_kept_connection(apps):
    _, fast, _, _ = apps
    failures = []

    def reader():
        client = OverHttp(f"http://{fast.address}")
        try:
            for key in KEYS * 5:
                status, body, _ = get(client, PLAIN_BUCKET, key)
                if (status, body) != (200, b"x" * (KEYS.index(key) + 1)):
                    failures.append((key, status, body[:40]))
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
