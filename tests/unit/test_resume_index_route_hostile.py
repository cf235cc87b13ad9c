"""Hostile cases for classify --local's resume index written through the warm stack's results route
(``Resume.save(store)``): a real embedded S3 behind a real Invoke API server on 127.0.0.1 (no instances),
the CLI's own StackS3 reading through the stack, and fake stacks that answer badly. Each run's index must
be read back by the next run as one written through the S3 API is, and a route that fails in any way costs
at most the route's request: the index is then written through S3, once, and the run is never failed."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import uuid

import boto3
import pytest

from rcyc_cli.classify.resume import DONE, INDEX_FOLDER, NEW, Resume
from rcyc_cli.classify.run import _save_quietly
from rcyc_cli.classify.target import stack_store
from rcyc_core.errors import AwsError
from rcyc_core.result_store import write_result

MODEL = {"name": "m", "version": "1", "sha256": "b" * 64}
IMAGE = "e0"


@pytest.fixture(scope="module")
def stack():
    """The embedded S3 and the stack's Invoke API in front of it (results route and reads), both stopped by
    their own handles."""
    from rcyc_cli.local.emulator.s3 import EmbeddedS3
    from rcyc_cli.local.stack.invoke_api import Api, StackHTTPServer
    from rcyc_cli.local.stack.server import store_results

    s3_server = EmbeddedS3().start()
    api_server = thread = None
    try:
        api = Api(None, lambda: {}, ("f",), None, None, None, read_timeout=5,
                  store=lambda payload: store_results(payload, s3_server), s3=s3_server)
        api_server = StackHTTPServer(("127.0.0.1", 0), api)
        thread = threading.Thread(target=api_server.serve_forever, daemon=True)
        thread.start()
        plain = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
                             aws_access_key_id="local", aws_secret_access_key="local")
        yield f"http://127.0.0.1:{api_server.server_address[1]}", plain, s3_server
    finally:
        if api_server is not None:
            api_server.shutdown()
            api_server.server_close()
            thread.join()
        s3_server.stop()


@pytest.fixture
def bucket(stack):
    name = f"b-{uuid.uuid4().hex[:12]}"
    stack[1].create_bucket(Bucket=name)
    return name


def reads(stack) -> tuple[object, list[int]]:
    """The CLI's S3 of the stack (reads through the stack, anything else through a boto3 client made on first
    use), and a list that grows when that client is made."""
    from rcyc_cli.local.stack.s3_reads import StackS3

    url, plain = stack[:2]
    made: list[int] = []

    def make():
        made.append(1)
        return plain

    return StackS3(url, make), made


def entry(bucket: str, key: str) -> dict:
    return {"key": key, "bucket": bucket, "label": "boxes", "confidence": 0.9, "scores": {"boxes": 0.9},
            "object": {"etag": IMAGE}}


def a_run(stack, bucket: str, keys: list[str], store, results_prefix: str = "results/", prefix: str = "photos/",
          save: bool = True) -> tuple[Resume, list[int]]:
    s3, made = reads(stack)
    resume = Resume(s3, bucket, results_prefix, prefix, MODEL["sha256"]).load()
    for key in keys:  # each result written as classify's writer would (not what is under test)
        resume.record(entry(bucket, key), MODEL, write_result(stack[1], bucket, results_prefix, entry(bucket, key), MODEL))
    if save:
        _save_quietly(resume, store)
    return resume, made


def index_files(stack, bucket: str, results_prefix: str = "results/") -> list[str]:
    folder = f"{results_prefix}{INDEX_FOLDER}{MODEL['sha256']}/"
    return [o["Key"] for o in stack[1].list_objects_v2(Bucket=bucket, Prefix=folder).get("Contents", [])]


def done_by_next_run(stack, bucket: str, keys: list[str], results_prefix: str = "results/", prefix: str = "photos/"):
    s3, _ = reads(stack)
    resume = Resume(s3, bucket, results_prefix, prefix, MODEL["sha256"]).load()
    return [resume.lookup(key, IMAGE)[0] for key in keys], resume


def test_an_index_through_the_route_is_stored_as_one_through_s3_and_read_back_alike(stack, bucket):
    url, plain = stack[:2]
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(url), results_prefix="routed/")
    a_run(stack, bucket, ["photos/a.jpg"], None, results_prefix="direct/")
    [routed], [direct] = index_files(stack, bucket, "routed/"), index_files(stack, bucket, "direct/")
    heads = [plain.head_object(Bucket=bucket, Key=key) for key in (routed, direct)]
    assert heads[0]["ContentType"] == heads[1]["ContentType"] == "application/json"
    assert heads[0]["Metadata"] == heads[1]["Metadata"] == {}
    body = plain.get_object(Bucket=bucket, Key=routed)["Body"].read()
    assert heads[0]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"' and heads[0]["ContentLength"] == len(body)
    for results_prefix in ("routed/", "direct/"):
        assert done_by_next_run(stack, bucket, ["photos/a.jpg"], results_prefix)[0] == [DONE]


def test_a_rerun_replaces_the_old_index_file_through_the_stack_without_making_an_s3_client(stack, bucket):
    """The merge path: the file a rerun read is deleted once the new one is stored. Deleting it through
    boto3 made the S3 client the route was taken to avoid, at the end of every rerun that had an index."""
    url = stack[0]
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(url))
    [first] = index_files(stack, bucket)
    _, made = a_run(stack, bucket, ["photos/b.jpg"], stack_store(url))
    [second] = index_files(stack, bucket)
    assert second != first
    assert done_by_next_run(stack, bucket, ["photos/a.jpg", "photos/b.jpg"])[0] == [DONE, DONE]
    assert made == []


def test_several_old_files_merged_by_a_rerun_leave_one(stack, bucket):
    url = stack[0]
    for key in ("photos/a.jpg", "photos/b.jpg", "photos/c.jpg"):  # forced runs: each file beside the others
        s3, _ = reads(stack)
        resume = Resume(s3, bucket, "results/", "photos/", MODEL["sha256"]).load(list_results=False)
        resume.record(entry(bucket, key), MODEL, write_result(stack[1], bucket, "results/", entry(bucket, key), MODEL))
        resume.save(stack_store(url))
    assert len(index_files(stack, bucket)) == 3
    _, made = a_run(stack, bucket, ["photos/d.jpg"], stack_store(url))
    assert len(index_files(stack, bucket)) == 1 and made == []
    keys = [f"photos/{k}.jpg" for k in "abcd"]
    assert done_by_next_run(stack, bucket, keys)[0] == [DONE] * 4


def test_a_stack_that_stores_the_index_but_keeps_the_old_files_leaves_them_to_s3(stack, bucket, monkeypatch):
    """A stack from before "replaces" (or one whose deletes failed) stores the new file and says it removed
    none: the old files are deleted through S3, never left for every later run to read again."""
    url = stack[0]
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(url))
    [first] = index_files(stack, bucket)
    monkeypatch.setattr(stack[2], "delete_documents", lambda bucket_name, keys: [])
    _, made = a_run(stack, bucket, ["photos/b.jpg"], stack_store(url))
    [second] = index_files(stack, bucket)
    assert second != first and made == [1]
    assert done_by_next_run(stack, bucket, ["photos/a.jpg", "photos/b.jpg"])[0] == [DONE, DONE]


@pytest.mark.parametrize("replaces", [
    "results/.rcyc-index/x.json", [7], ["results/photos/a.jpg.json"], ["results/.rcyc-index/x.txt"],
    ["results/.rcyc-index/" + "x" * 1100 + ".json"], ["r\udcff/.rcyc-index/x.json"],
    ["results/.rcyc-index/n.json"]])  # the very file stored: it would be stored, then removed
def test_the_route_removes_only_resume_index_files_and_refuses_the_whole_request_otherwise(stack, bucket, replaces):
    from rcyc_cli.local.stack.errors import ApiError
    from rcyc_cli.local.stack.server import store_results

    stack[1].put_object(Bucket=bucket, Key="results/photos/a.jpg.json", Body=b"{}")
    with pytest.raises(ApiError) as refused:
        store_results({"bucket": bucket, "objects": [{"key": "results/.rcyc-index/n.json", "body": "{}"}],
                       "replaces": replaces}, stack[2])
    assert refused.value.status == 400
    assert [o["Key"] for o in stack[1].list_objects_v2(Bucket=bucket)["Contents"]] == ["results/photos/a.jpg.json"]


@pytest.mark.parametrize("rerun", [False, True])
def test_an_index_stored_but_its_answer_lost_is_written_once_and_the_next_run_has_nothing_to_merge(stack, bucket, rerun):
    """The stack stored the index (and removed the files it replaces) but its answer never came: S3 writes
    the same name again and deletes the files already gone, and the next run finds one file."""
    url = stack[0]
    real, calls = stack_store(url), []
    if rerun:
        a_run(stack, bucket, ["photos/a.jpg"], real)

    def lost(bucket_name, items, **replacing):
        calls.append([key for key, _, _ in items])
        real(bucket_name, items, **replacing)  # stored ...
        raise AwsError("the local stack did not store the results: connection reset", kind="S3Unreachable")

    a_run(stack, bucket, ["photos/a.jpg", "photos/b.jpg"], lost)
    [name] = index_files(stack, bucket)
    assert calls == [[name]]  # the S3 write went to the same name: one file, not two
    states, resume = done_by_next_run(stack, bucket, ["photos/a.jpg", "photos/b.jpg"])
    assert states == [DONE, DONE] and resume._changed is False


def test_concurrent_runs_saving_at_once_lose_no_key(stack, bucket):
    url = stack[0]
    a_run(stack, bucket, ["photos/base.jpg"], stack_store(url))
    runs = [a_run(stack, bucket, [f"photos/{i}.jpg"], stack_store(url), save=False)[0] for i in range(4)]
    barrier = threading.Barrier(len(runs))
    failures: list[BaseException] = []

    def save(resume: Resume) -> None:
        try:
            barrier.wait(30)
            resume.save(stack_store(url))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=save, args=(resume,)) for resume in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and not any(t.is_alive() for t in threads)
    keys = ["photos/base.jpg"] + [f"photos/{i}.jpg" for i in range(4)]
    states, resume = done_by_next_run(stack, bucket, keys)
    assert states == [DONE] * 5
    resume.save(stack_store(url))  # several files: the next run merges them into one
    assert len(index_files(stack, bucket)) == 1 and done_by_next_run(stack, bucket, keys)[0] == [DONE] * 5


@pytest.mark.parametrize("results_prefix, key", [
    ("résultats/", "photos/é 1+2%.jpg"),
    ("a b+c%2F?x=1#y&z/", "photos/with space/x?.jpg"),
    ("日本/", "photos/日本語.jpg"),
    ("r/./../r//", "photos/emoji-😀.jpg"),
])
def test_odd_characters_in_the_prefix_and_the_keys_survive_the_route(stack, bucket, results_prefix, key):
    url = stack[0]
    routed: list[str] = []
    real = stack_store(url)

    def store(bucket_name, items):
        routed.extend(k for k, _, _ in items)
        return real(bucket_name, items)

    a_run(stack, bucket, [key], store, results_prefix=results_prefix)
    assert index_files(stack, bucket, results_prefix) == routed
    assert done_by_next_run(stack, bucket, [key], results_prefix)[0] == [DONE]


def test_an_index_key_longer_than_s3_takes_fails_quietly(stack, bucket):
    """A results prefix of 1000 bytes: the index's name is over S3's 1024; the route refuses it and so may
    S3. The run is not failed by an optimisation; nothing half written is left."""
    url = stack[0]
    results_prefix = "r" * 1000 + "/"
    s3, _ = reads(stack)
    resume = Resume(s3, bucket, results_prefix, "photos/", MODEL["sha256"]).load()
    resume.record(entry(bucket, "photos/a.jpg"), MODEL, "etag")
    _save_quietly(resume, stack_store(url))  # raises nothing


def test_a_lone_surrogate_in_a_key_is_refused_by_the_route_not_answered_as_a_bug(stack, bucket):
    """A results prefix from a command line that was not UTF-8 carries lone surrogates; JSON's \\u escapes
    carry them to the route. S3 cannot store such a key: a refusal (400), as for any key S3 cannot take."""
    from rcyc_cli.local.stack.errors import ApiError
    from rcyc_cli.local.stack.server import store_results

    for obj in ({"key": "r\udcff/x.json", "body": "{}"}, {"key": "r/x.json", "body": '{"a": "\udcff"}'}):
        with pytest.raises(ApiError) as refused:
            store_results({"bucket": bucket, "objects": [obj]}, None)
        assert refused.value.status == 400


class Answering(http.server.BaseHTTPRequestHandler):
    """A stack that answers the route with ``server.answer`` = (status, body)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.asked += 1
        status, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_stack():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    server.daemon_threads = True
    server.asked = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("status, body", [
    (200, b"not json"), (200, b"[]"), (200, b"null"), (200, b'{"etags": []}'), (200, b'{"etags": ["a", "b"]}'),
    (200, b'{"etags": [1]}'), (200, b'{"etags": "a"}'), (200, b'{"error": "x"}'), (200, b'{"error": {"kind": 7}}'),
    (200, b"{" * 100_000), (500, b"<html>oops</html>"), (404, b""), (413, b'{"message": "too large"}'),
    (429, b""), (302, b""),
])
def test_a_route_answering_anything_but_its_etag_gets_the_index_written_through_s3_once(stack, bucket, fake_stack, status, body):
    fake_stack.answer = (status, body)
    url = f"http://127.0.0.1:{fake_stack.server_address[1]}"
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(url))
    assert fake_stack.asked == 1 and len(index_files(stack, bucket)) == 1
    assert done_by_next_run(stack, bucket, ["photos/a.jpg"])[0] == [DONE]


def test_a_route_that_does_not_answer_is_given_up_after_a_bounded_wait(stack, bucket, monkeypatch):
    """A hang: the route's client waits a finite time (never forever), then S3 writes the index."""
    import urllib.request

    waited = []

    def hangs(request, timeout=None, **_):
        waited.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", hangs)
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(stack[0]))
    assert len(waited) == 1 and waited[0] is not None and 0 < waited[0] < float("inf")
    assert len(index_files(stack, bucket)) == 1


def test_a_route_that_is_gone_costs_nothing_but_its_refused_connection(stack, bucket):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(f"http://127.0.0.1:{port}"))
    assert len(index_files(stack, bucket)) == 1


def test_an_interrupt_while_the_route_writes_ends_the_run(stack, bucket):
    def interrupted(bucket_name, items):
        raise KeyboardInterrupt

    s3, _ = reads(stack)
    resume = Resume(s3, bucket, "results/", "photos/", MODEL["sha256"]).load()
    resume.record(entry(bucket, "photos/a.jpg"), MODEL, "etag")
    with pytest.raises(KeyboardInterrupt):
        _save_quietly(resume, interrupted)


def test_an_unchanged_rerun_writes_no_index_at_all(stack, bucket):
    url = stack[0]
    a_run(stack, bucket, ["photos/a.jpg"], stack_store(url))
    calls = []
    resume, _ = a_run(stack, bucket, [], lambda b, items: calls.append(items) or ["e"])
    assert calls == [] and len(index_files(stack, bucket)) == 1
    assert resume.lookup("photos/a.jpg", IMAGE)[0] == DONE and resume.lookup("photos/new.jpg", IMAGE)[0] == NEW
