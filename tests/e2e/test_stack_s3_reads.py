"""The local commands' reads of the warm stack's S3 come from the stack itself (no boto3): against a real stack,
they answer what boto3's ListObjectsV2 and GetObject answer, fail with the same codes, refuse what is no
read, and leave to boto3 what only the S3 API may answer. A resume with nothing to do imports no boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from rcyc_cli.local.stack import loopback
from rcyc_cli.local.stack.protocol import S3_LIST_PATH, S3_OBJECT_PATH
from rcyc_cli.local.stack.s3_reads import StackS3
from rcyc_core.errors import AwsError
from tests.conftest import FIXTURES, class_images
from tests.e2e.cloud_fixtures import private_stack

pytestmark = pytest.mark.e2e
BUCKET = "reads-bucket"
KEYS = ["a/with space.jpg", "a/plus+sign.jpg", "a/ünïcødé.jpg", "a/per%cent.jpg", "a/deep/x/y.jpg", "a/q?mark&amp.jpg",
        "a/tab\tand~tilde.jpg", "b/other.jpg"]


@pytest.fixture(scope="module")
def warm(rie_path, tmp_path_factory):
    """A private warm stack, its boto3 S3 client and its stack-read client; stopped after the module."""
    with private_stack(tmp_path_factory.mktemp("reads-cache"), rie_path, BUCKET, instances=1) as (running, s3):
        for n, key in enumerate(KEYS):
            s3.put_object(Bucket=BUCKET, Key=key, Body=f"body {n}".encode() * (n + 1))
        made = []
        reads = StackS3(running.endpoint_url, lambda: made.append(1) or s3)
        yield running, s3, reads, made


def shape(page: dict) -> tuple:
    return ([(o["Key"], o["Size"], o["ETag"]) for o in page.get("Contents", [])], page["IsTruncated"],
            "NextContinuationToken" in page)


@pytest.mark.parametrize("prefix", ["", "a/", "a/deep/", "a/ü", "nothing/"])
def test_a_listing_page_by_page_is_boto3s(warm, prefix):
    _, s3, reads, made = warm
    theirs, ours = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=2), reads.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=2)
    while True:
        assert shape(ours) == shape(theirs)
        if not theirs["IsTruncated"]:
            break
        theirs = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=2, ContinuationToken=theirs["NextContinuationToken"])
        ours = reads.list_objects_v2(Bucket=BUCKET, Prefix=prefix, MaxKeys=2, ContinuationToken=ours["NextContinuationToken"])
    assert made == []  # boto3 was never asked


@pytest.mark.parametrize("key", KEYS)
def test_an_object_is_boto3s_bytes_and_etag(warm, key):
    _, s3, reads, made = warm
    theirs, ours = s3.get_object(Bucket=BUCKET, Key=key), reads.get_object(Bucket=BUCKET, Key=key)
    assert ours["Body"].read() == theirs["Body"].read() and ours["ETag"] == theirs["ETag"]
    assert made == []


@pytest.mark.parametrize("call, code", [
    (lambda r: r.get_object(Bucket=BUCKET, Key="a/none.jpg"), "NoSuchKey"),
    (lambda r: r.get_object(Bucket="no-such-bucket", Key="k"), "NoSuchBucket"),
    (lambda r: r.list_objects_v2(Bucket="no-such-bucket"), "NoSuchBucket"),
    (lambda r: r.list_objects_v2(Bucket=BUCKET, ContinuationToken="never-given"), "InvalidArgument"),
])
def test_a_failed_read_is_the_client_error_boto3_raises(warm, call, code):
    _, _, reads, _ = warm
    with pytest.raises(ClientError) as caught:
        call(reads)
    assert caught.value.response["Error"]["Code"] == code


@pytest.mark.parametrize("path, query", [
    (S3_LIST_PATH, ""), (S3_LIST_PATH, f"bucket={BUCKET}&max-keys=abc"), (S3_LIST_PATH, f"bucket={BUCKET}&max-keys=1001"),
    (S3_LIST_PATH, f"bucket={BUCKET}&max-keys=-1"), (S3_LIST_PATH, f"bucket={BUCKET}&max-keys=%C2%B2"),
    (S3_LIST_PATH, f"bucket={BUCKET}&continuation-token="), (S3_LIST_PATH, f"bucket={BUCKET}&bucket=b"),
    (S3_LIST_PATH, f"bucket={BUCKET}&prefix=%FF"), (S3_OBJECT_PATH, f"bucket={BUCKET}"), (S3_OBJECT_PATH, f"bucket={BUCKET}&key="),
    # a question the route does not answer is refused, never answered as another (all keys, the current version)
    (S3_LIST_PATH, f"bucket={BUCKET}&delimiter=/"), (S3_LIST_PATH, f"bucket={BUCKET}&start-after=b"),
    (S3_OBJECT_PATH, f"bucket={BUCKET}&key=b/other.jpg&versionId=null"), (S3_OBJECT_PATH, f"bucket={BUCKET}&key=b/other.jpg&range=bytes=0-0"),
])
def test_a_read_that_is_no_read_is_refused_with_a_reason_and_the_stack_keeps_serving(warm, path, query):
    running, _, reads, _ = warm
    status, _, body = loopback.exchange(f"{running.endpoint_url}{path}?{query}")
    assert status == 400 and json.loads(body)["code"] == "InvalidArgument"
    assert reads.list_objects_v2(Bucket=BUCKET, Prefix="b/")["KeyCount"] == 1


def test_a_bucket_with_a_policy_is_read_through_the_s3_api(warm):
    _, s3, _, _ = warm
    made = []
    reads = StackS3(warm[0].endpoint_url, lambda: made.append(1) or s3)
    s3.create_bucket(Bucket="with-policy")
    s3.put_object(Bucket="with-policy", Key="k", Body=b"kept")
    s3.put_bucket_policy(Bucket="with-policy", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::with-policy"}]}))
    assert reads.list_objects_v2(Bucket="with-policy")["KeyCount"] == 1 and made == [1]
    assert reads.get_object(Bucket="with-policy", Key="k")["Body"].read() == b"kept"


def test_a_stack_that_went_away_is_one_error_with_a_hint(warm):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    reads = StackS3(f"http://127.0.0.1:{port}", lambda: pytest.fail("boto3 is not the answer to a stack that is gone"))
    with pytest.raises(AwsError) as caught:
        reads.list_objects_v2(Bucket=BUCKET)
    assert caught.value.kind == "Unreachable" and "rcyc local status" in caught.value.hint


def test_classify_local_imports_no_boto3_whether_it_classifies_or_resumes(warm):
    """The listing, the reads, the results and the index go through the stack's routes, and the events through
    its Invoke API with rcyc's own client: boto3's import and a client (~0.2 s of CPU) are never paid."""
    running, s3, _, _ = warm
    for _, path in class_images()[:3]:
        s3.put_object(Bucket=BUCKET, Key=f"resume/{path.name}", Body=path.read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES.parent), str(FIXTURES.parent / "lambda")])}
    command = [sys.executable, "-X", "importtime", "-m", "rcyc_cli.main", "classify", f"s3://{BUCKET}/resume/", "--local", "--json"]

    def aws_modules(done) -> set[str]:
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
        return {name for name in imported if name.split(".")[0] in ("boto3", "botocore", "s3transfer")}

    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    summary = json.loads(first.stdout)
    assert first.returncode == 0 and summary["classified"] == 3 and summary["invocations"] == 1, first.stderr[-2000:]
    assert summary["billed_ms"] > 0  # the REPORT figures came back with the answer
    assert aws_modules(first) == set()
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix="results/resume/")["KeyCount"]
    assert stored == 3
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    summary = json.loads(again.stdout)
    assert again.returncode == 0 and summary["done_before"] == 3 and summary["invocations"] == 0
    assert aws_modules(again) == set()


def test_a_stack_without_the_reads_leaves_them_to_boto3():
    """A stack started by an older rcyc answers the read paths as any unknown route (404, no S3 code)."""
    import threading

    from rcyc_cli.local.stack.invoke_api import Api, StackHTTPServer

    server = StackHTTPServer(("127.0.0.1", 0), Api(None, lambda: {}, ("f",), None, None, None, read_timeout=5))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Boto3:
        def list_objects_v2(self, **params):
            return {"asked": params}

        def get_object(self, **params):
            return {"asked": params}

    try:
        reads = StackS3(f"http://127.0.0.1:{server.server_address[1]}", Boto3)
        assert reads.list_objects_v2(Bucket="b", Prefix="p/") == {"asked": {"Bucket": "b", "Prefix": "p/", "MaxKeys": 1000}}
        assert reads.get_object(Bucket="b", Key="k") == {"asked": {"Bucket": "b", "Key": "k"}}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("status, headers, body", [
    (200, {"Content-Type": "text/html"}, b"<html><title>It works!</title></html>"),  # a web server took the port
    (200, {"X-Rcyc-S3-Read": "list"}, b'{"IsTruncated": false, "KeyCount": 1, "Contents": [{"Key": 1}]}'),
    (200, {"X-Rcyc-S3-Read": "list"}, b'["not", "a", "page"]'),
    (500, {}, b"Internal Server Error"),
])
def test_an_answer_that_is_not_the_stacks_is_one_error_never_data(status, headers, body):
    """What answers at the stack's address without the stack's read header (or with a listing that is not one) is
    one error with a hint: never an object's bytes (a pointer that is "no current model"), never a traceback."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rcyc_cli.classify.listing import pages
    from rcyc_cli.cloud.store import read_pointer

    class Foreign(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reads = StackS3(f"http://127.0.0.1:{server.server_address[1]}", lambda: pytest.fail("not a case for boto3"))
        reads_of_it = [lambda: list(pages(reads, BUCKET, "a/"))]
        if "X-Rcyc-S3-Read" not in headers:  # (with the header, a malformed listing: the listing is what is checked)
            reads_of_it.append(lambda: read_pointer(reads, BUCKET))
        for read in reads_of_it:
            with pytest.raises(AwsError) as caught:
                read()
            assert caught.value.kind == "Unreachable" and "rcyc local status" in caught.value.hint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_of_more_than_s3s_most_is_s3s_page_not_an_error(warm):
    """S3 answers at most 1,000 keys whatever MaxKeys asks; boto3 passes MaxKeys on as it is."""
    _, s3, reads, made = warm
    page = reads.list_objects_v2(Bucket=BUCKET, MaxKeys=5000)
    assert [o["Key"] for o in page["Contents"]] == [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert made == []
