"""The warm stack's results route (classify --local) with hostile bodies, against the real embedded S3: it
stores only what the S3 API could store and serve back as a result, and refuses the rest, never coerced."""

from __future__ import annotations

import json

import boto3
import pytest

from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.local.stack.errors import ApiError
from rcyc_cli.local.stack.server import store_results

BUCKET = "stack-bucket"


@pytest.fixture(scope="module")
def embedded():
    server = EmbeddedS3().start()
    try:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        client.create_bucket(Bucket=BUCKET)
        yield server, client
    finally:
        server.stop()


def one(key="results/a.jpg.json", body='{"key": "a.jpg"}', metadata=None) -> dict:
    return {"bucket": BUCKET, "objects": [{"key": key, "body": body, "metadata": metadata or {}}]}


@pytest.mark.parametrize("payload", [
    one(key=123), one(body={"key": "a.jpg"}), one(body="not json"), one(body="[1, 2]"), one(body="[" * 100_000),
    one(key="models/model.tflite"), one(key="k" * 1020 + ".json"), one(key=".json" * 0),
    one(metadata={"rcyc-model-sha256": "é"}), one(metadata={"rcyc-model-sha256": "a\r\nx-evil: 1"}),
    one(metadata={"Bad Name": "v"}), one(metadata={"n": 1}), one(metadata=["n"]),
    {"bucket": BUCKET, "objects": ["x"]}, {"bucket": [BUCKET], "objects": []}, [1],
])
def test_a_hostile_result_object_is_refused_and_nothing_is_stored(embedded, payload):
    server, client = embedded
    before = client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    with pytest.raises(ApiError) as refused:
        store_results(payload, server)
    assert refused.value.status == 400
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == before


def test_a_stored_result_is_served_back_by_the_s3_api_with_its_metadata_and_etag(embedded):
    server, client = embedded
    answer = store_results(one(key="results/dir/../b.jpg.json", metadata={"rcyc-model-sha256": "a" * 64}), server)
    head = client.head_object(Bucket=BUCKET, Key="results/dir/../b.jpg.json")
    assert answer["etags"] == [head["ETag"]] and head["Metadata"] == {"rcyc-model-sha256": "a" * 64}
    assert json.loads(client.get_object(Bucket=BUCKET, Key="results/dir/../b.jpg.json")["Body"].read()) == {"key": "a.jpg"}


def test_a_bucket_the_embedded_s3_does_not_hold_is_an_error_answer(embedded):
    server, _ = embedded
    assert store_results({**one(), "bucket": "no-such-bucket"}, server)["error"]["kind"] == "NoSuchBucket"


def test_a_refusal_from_the_stack_reaches_the_user_with_its_reason():
    import http.server
    import threading

    from rcyc_core.errors import AwsError

    from rcyc_cli.classify.target import stack_store

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"Type": "User", "message": "a result key is 1 to 1024 bytes ending in .json"}).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(AwsError, match="ending in .json"):
            stack_store(f"http://127.0.0.1:{server.server_address[1]}")(BUCKET, [("k", b"{}", {})])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_bucket_moto_would_do_more_for_is_left_to_the_s3_api_and_the_writer_goes_there(embedded):
    """A bucket with a policy (which may deny the write), or logging (a log object per request): the route
    stores nothing and says so, and classify's writer then writes through S3, where moto applies them."""
    import threading

    from rcyc_cli.classify.target import NoStoreRoute, stack_store
    from rcyc_cli.classify.writer import Writer
    from rcyc_cli.local.stack.invoke_api import Api, StackHTTPServer

    server, client = embedded
    guarded = "stack-bucket-with-policy"
    client.create_bucket(Bucket=guarded)
    client.put_bucket_policy(Bucket=guarded, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": f"arn:aws:s3:::{guarded}"}]}))
    answer = store_results({**one(), "bucket": guarded}, server)
    assert answer.get("through_s3") and "etags" not in answer
    assert client.list_objects_v2(Bucket=guarded).get("KeyCount", 0) == 0  # nothing stored by the route
    assert "etags" in store_results(one(key="results/still-here.jpg.json"), server)  # other buckets: the route's

    api = Api(None, lambda: {}, ("f",), None, None, None, read_timeout=5, store=lambda payload: store_results(payload, server))
    stack = StackHTTPServer(("127.0.0.1", 0), api)
    thread = threading.Thread(target=stack.serve_forever, daemon=True)
    thread.start()
    try:
        store = stack_store(f"http://127.0.0.1:{stack.server_address[1]}")
        with pytest.raises(NoStoreRoute):
            store(guarded, [("results/a.jpg.json", b'{"key": "a.jpg"}', {})])
        writer = Writer(client, guarded, "results/", 1, None, store)
        for future in writer.submit([{"record": 0, "bucket": guarded, "key": "photos/a.jpg", "label": "boxes",
                                      "confidence": 0.9, "scores": {"boxes": 0.9}}], None, {"photos/a.jpg": "e0"}):
            future.result()
        writer.close()
        assert writer.store is None and writer.lost == []  # written through S3
        assert client.list_objects_v2(Bucket=guarded, Prefix="results/")["KeyCount"] == 1
    finally:
        stack.shutdown()
        stack.server_close()
        thread.join()
        for obj in client.list_objects_v2(Bucket=guarded).get("Contents", []):
            client.delete_object(Bucket=guarded, Key=obj["Key"])
        client.delete_bucket_policy(Bucket=guarded)
        client.delete_bucket(Bucket=guarded)
