"""classify --local's client of the stack's Invoke API (``RemoteStack.invoke``) against whatever listens on the
stack's port: every status, lying or missing headers, bodies that are no answer of the function, hostile
report figures, function names of every shape, many threads at once, and a stack that dies mid-run. Each
ends as one FunctionError (a short printable kind, one bounded printable line) or an answer; classify's
one retry policy tries the transient ones at most ATTEMPTS times in all and the permanent ones once; one
event's failure costs only its own records; a run never ends in a traceback."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import threading
from urllib.parse import unquote_plus, urlsplit

import boto3
import pytest
from rcyc_core.errors import FunctionError, RcycError
from rcyc_core.labels import LABELS

from rcyc_cli.classify import run as run_module
from rcyc_cli.classify.run import ClassifyOptions, classify
from rcyc_cli.classify.target import ATTEMPTS, TRANSIENT, Target, invoke
from rcyc_cli.cloud.store import POINTER_KEY
from rcyc_cli.invocation import Invocation, Report
from rcyc_cli.local.stack import client, loopback
from rcyc_cli.local.stack.admission import Admission
from tests.stack_api import serving

NAME = "rcyc-classifier"
BUCKET = "archive"
MODEL = {"name": "m", "version": "1", "sha256": "a" * 64}
EMPTY = {"results": [], "errors": [], "skipped": [], "model": None}
MESSAGE_LIMIT = 1000  # what "one bounded line" means here: far above any message rcyc writes, far below a megabyte


class Peer:
    """Whatever listens on the stack's port: on 127.0.0.1, a thread per connection; each request (its request
    line, lower-cased headers and body) is recorded and answered by ``behaviour(connection, request)``, which
    writes what it likes. Stopped by ``close`` (the fixture's)."""

    def __init__(self, behaviour):
        self.behaviour, self.requests, self.lock = behaviour, [], threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            with self.lock:
                self.threads.append(thread)
            thread.start()

    def _serve(self, connection):
        with connection:
            connection.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                while len(body) < int(headers.get("content-length", 0)):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                request = {"line": lines[0], "headers": headers, "body": body}
                with self.lock:
                    self.requests.append(request)
                self.behaviour(connection, request)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=15)


@pytest.fixture
def peer():
    peers: list[Peer] = []

    def start(behaviour) -> Peer:
        peers.append(Peer(behaviour))
        return peers[-1]

    yield start
    for one in peers:
        one.close()


def raw(answer: bytes):
    """A behaviour sending ``answer`` as it is, then closing."""
    return lambda connection, request: connection.sendall(answer)


def http(status: str, body: bytes = b"", headers: dict | None = None, length: int | None = None) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    length = len(body) if length is None else length
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {length}\r\n\r\n".encode("latin-1") + body


def state(endpoint: str, pid: int = 1) -> client.StackState:
    return client.StackState(pid=pid, endpoint=endpoint, s3_endpoint="http://127.0.0.1:1", bucket=BUCKET,
                             config=client.StackConfig(function_name=NAME), runtime="process", started_at=0.0,
                             owner="t", rie_path="", model={}, instance_pids=[])


def remote(endpoint: str, pid: int = 1) -> client.RemoteStack:
    return client.RemoteStack(state(endpoint, pid))


def local_target(endpoint: str, function: str = NAME, pid: int = 1) -> Target:
    return Target("local", None, function, endpoint, 1024, "x86_64", 60, None, BUCKET, stack=remote(endpoint, pid))


def one_line(error: FunctionError) -> None:
    """The invariant of every failure: a short printable kind, one printable line of bounded length."""
    kind, message = error.kind, error.message
    assert isinstance(kind, str) and 0 < len(kind) <= 100 and kind.isprintable() and not any(c.isspace() for c in kind), kind[:200]
    assert isinstance(message, str) and message.isprintable() and len(message) <= MESSAGE_LIMIT, message[:300]


def outcome(endpoint: str, **kwargs) -> Invocation | FunctionError:
    try:
        return remote(endpoint).invoke({"Records": []}, attempts=kwargs.pop("attempts", 1), **kwargs)
    except FunctionError as exc:
        one_line(exc)
        return exc


# -- 1. any answer is one error or an answer ----------------------------------------------------------------------------

ANSWER = json.dumps(EMPTY).encode()
ODD_ANSWERS = {
    "100 then 200": b"HTTP/1.1 100 Continue\r\n\r\n" + http("200 OK", ANSWER),
    "204 with a length": http("204 No Content"),
    "204 without a length": b"HTTP/1.1 204 No Content\r\n\r\n",
    "202": http("202 Accepted"),
    "301 elsewhere": http("301 Moved Permanently", b"", {"Location": "http://example.com/"}),
    "304": b"HTTP/1.1 304 Not Modified\r\n\r\n",
    "200 no length, closed": b"HTTP/1.1 200 OK\r\n\r\n" + ANSWER,
    "200 lying length, closed": http("200 OK", ANSWER, length=len(ANSWER) + 50),
    "200 two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 900\r\n\r\n{}",
    "200 length of spaces": b"HTTP/1.1 200 OK\r\nContent-Length:    \r\n\r\n{}",
    "200 head past the limit": http("200 OK", ANSWER, {"X-Amz-Log-Result": "A" * 40_000}),
    "200 header without colon": b"HTTP/1.1 200 OK\r\nnonsense\r\nContent-Length: 2\r\n\r\n{}",
    "200 gzip": http("200 OK", gzip.compress(ANSWER), {"Content-Encoding": "gzip"}),
    "200 not utf-8": http("200 OK", b"\xff\xfe{\x00\x80}"),
    "200 without the report header": http("200 OK", ANSWER),
    "200 an array": http("200 OK", b"[1, 2]"),
    "200 null": http("200 OK", b"null"),
    "200 deep": http("200 OK", b"[" * 200_000),
    "200 no reason phrase": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
    "HTTP/0.9 garbage": b"{\"results\": []}",
    "a status of 000": http("000 Zero"),
    "a status of 999": http("999 What", b"{}", {"X-Amzn-ErrorType": "Weird"}),
    "a status of 599 no type": http("599 Odd", b"\x00\x01"),
    "refusal with a 10 KB message": http("400 Bad", json.dumps({"message": "\x1b[2J\n" * 2000}).encode(),
                                         {"X-Amzn-ErrorType": "InvalidRequestContentException"}),
    "refusal with a type and a url": http("404 Not Found", b"{}", {"X-Amzn-ErrorType":
                                                                  "ResourceNotFoundException:http://internal.amazon.com/"}),
    "log tail garbage": http("200 OK", ANSWER, {"X-Amz-Log-Result": "!!!%%%not base64\x7f"}),
    "log tail of binary": http("200 OK", ANSWER, {"X-Amz-Log-Result": base64.b64encode(bytes(range(256)) * 16).decode()}),
    "log tail of 12 KB": http("200 OK", ANSWER, {"X-Amz-Log-Result": base64.b64encode(b"x\n" * 4500).decode()}),
    "report a number": http("200 OK", ANSWER, {"X-Rcyc-Report": "1e999"}),
    "report of a huge int": http("200 OK", ANSWER, {"X-Rcyc-Report": '{"report": {"memory_mb": ' + "9" * 5000 + "}}"}),
}


@pytest.mark.parametrize("answer", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_any_answer_is_one_error_or_an_answer(peer, answer):
    result = outcome(peer(raw(answer)).endpoint)  # an answer of another shape is classify's to refuse (below)
    assert isinstance(result, (Invocation, FunctionError))


FUNCTION_ERRORS = {
    "a megabyte message": {"errorType": "Boom", "errorMessage": "m" * 1_000_000},
    "lines and escapes": {"errorType": "Boom", "errorMessage": "line one\nline two\x1b[31m red\r\x00"},
    "a message that is an object": {"errorType": "Boom", "errorMessage": {"nested": ["x"] * 10}},
    "a timeout of many lines": {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out\n" * 5000},
    "a timeout that is an object": {"errorType": "Sandbox.Timedout", "errorMessage": {"a": 1}},
    "a type of escapes": {"errorType": "\x1b]0;owned\x07", "errorMessage": "x"},
    "not an error object": {"results": [], "note": "\n" * 100},
}


@pytest.mark.parametrize("body", FUNCTION_ERRORS.values(), ids=FUNCTION_ERRORS.keys())
def test_a_function_error_of_any_body_is_one_bounded_line(peer, body):
    endpoint = peer(raw(http("200 OK", json.dumps(body).encode(), {"X-Amz-Function-Error": "Unhandled"}))).endpoint
    assert isinstance(outcome(endpoint), FunctionError)


def test_a_function_error_flag_of_any_text_with_a_text_body_is_one_line(peer):
    endpoint = peer(raw(http("200 OK", b"Task timed out\n\x1b[2J" + b"z" * 100_000,
                             {"X-Amz-Function-Error": "\x1b[31m" + "U" * 5000}))).endpoint
    assert isinstance(outcome(endpoint), FunctionError)


def test_a_drip_past_the_timeout_is_one_emulator_error(peer, monkeypatch):
    def drip(connection, request):
        for byte in http("200 OK", ANSWER):
            if peer_stop.wait(0.05):
                return
            connection.sendall(bytes([byte]))

    peer_stop = threading.Event()
    endpoint = peer(drip).endpoint
    exchange = loopback.exchange
    monkeypatch.setattr(loopback, "exchange", lambda url, body, timeout, **kw: exchange(url, body, 0.3, **kw))
    try:
        error = outcome(endpoint)
    finally:
        peer_stop.set()
    assert isinstance(error, FunctionError) and error.kind == "EmulatorError"


def test_a_peer_closing_mid_body_is_one_emulator_error(peer):
    def half(connection, request):
        connection.sendall(http("200 OK", ANSWER)[:-5])
        connection.shutdown(socket.SHUT_RDWR)

    error = outcome(peer(half).endpoint)
    assert isinstance(error, FunctionError) and error.kind == "EmulatorError"


def test_a_peer_resetting_is_one_emulator_error(peer):
    def reset(connection, request):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    error = outcome(peer(reset).endpoint)
    assert isinstance(error, FunctionError) and error.kind == "EmulatorError"


HOSTILE_REPORTS = {"infinite": '{"report": {"billed_ms": 1e999, "duration_ms": -1e999}}',
                   "NaN": '{"report": {"billed_ms": NaN, "peak_mb": Infinity}}',
                   "near the float limit": '{"report": {"billed_ms": 1.7e308}}',
                   "negative": '{"report": {"billed_ms": -5000}}'}


@pytest.mark.parametrize("header", HOSTILE_REPORTS.values(), ids=HOSTILE_REPORTS.keys())
def test_a_report_header_with_figures_no_stack_gives_gives_no_such_figure(peer, header):
    answer = outcome(peer(raw(http("200 OK", ANSWER, {"X-Rcyc-Report": header}))).endpoint)
    assert isinstance(answer, Invocation)
    for value in answer.report.to_dict_raw().values():
        assert value is None or isinstance(value, bool) or 0 <= value < 1e12, value


@pytest.mark.parametrize("line", ["REPORT RequestId: 1 Duration: 1.2.3 ms Billed Duration: 2 ms Memory Size: 128 MB",
                                  "REPORT RequestId: 1 Duration: 1 ms Billed Duration: " + "9" * 400 + " ms Memory Size: 128 MB",
                                  "INIT REPORT(durationMs: 1.2.3.4)", "REPORT RequestId: 1 Memory Size: " + "9" * 400 + " MB"])
def test_a_log_tails_report_line_with_figures_no_report_has_gives_none_of_them(line):
    # the AWS path reads its figures from the log tail, which the function's own prints share
    from rcyc_cli.invocation import parse_report

    for value in parse_report([line]).to_dict_raw().values():
        assert value is None or 0 <= value < 1e12, value


# -- 2. one retry policy -----------------------------------------------------------------------------------------------

def tries(peer, answer: bytes) -> tuple[FunctionError, int]:
    """What classify's ``invoke`` ends with against a peer always answering ``answer``, and how many requests it sent."""
    server = peer(raw(answer))
    with pytest.raises(FunctionError) as caught:
        invoke(local_target(server.endpoint), {"Records": []}, backoff=0)
    one_line(caught.value)
    return caught.value, len(server.requests)


TRANSIENT_ANSWERS = {
    "429 typed": http("429 Too Many", b"{}", {"X-Amzn-ErrorType": "TooManyRequestsException"}),
    "429 untyped": http("429 Too Many"),
    "500 typed": http("500 Oops", b"{}", {"X-Amzn-ErrorType": "ServiceException"}),
    "502 untyped": http("502 Bad Gateway", b"<html>"),
    "503 untyped": http("503 Unavailable"),
    "504 untyped": http("504 Gateway Timeout"),
    "cut short": http("200 OK", ANSWER, length=len(ANSWER) + 1),
    "closed at once": b"",
    "no HTTP": b"SSH-2.0-OpenSSH\r\n",
}


@pytest.mark.parametrize("answer", TRANSIENT_ANSWERS.values(), ids=TRANSIENT_ANSWERS.keys())
def test_a_transient_failure_is_tried_attempts_times_in_all_never_attempts_squared(peer, answer):
    error, sent = tries(peer, answer)
    assert error.kind in TRANSIENT and sent == ATTEMPTS


PERMANENT_ANSWERS = {
    "404 not found": http("404 Not Found", b'{"Message": "no"}', {"X-Amzn-ErrorType": "ResourceNotFoundException"}),
    "400 invalid": http("400 Bad", b"{}", {"X-Amzn-ErrorType": "InvalidRequestContentException"}),
    "413 too large": http("413 Too Large", b"{}", {"X-Amzn-ErrorType": "RequestTooLargeException"}),
    "400 untyped": http("400 Bad"),
    "413 untyped": http("413 Too Large"),
    "404 untyped": http("404 Not Found"),
    # the error type is the peer's word: it cannot name one of rcyc's own transient failures
    "400 calling itself EmulatorError": http("400 Bad", b"{}", {"X-Amzn-ErrorType": "EmulatorError"}),
    "400 calling itself Timeout": http("400 Bad", b"{}", {"X-Amzn-ErrorType": "Timeout"}),
    "404 calling itself Unreachable": http("404 Not Found", b"{}", {"X-Amzn-ErrorType": "Unreachable"}),
    "413 calling itself ConnectionFailed": http("413 Too Large", b"{}", {"X-Amzn-ErrorType": "ConnectionFailed"}),
    "a function error": http("200 OK", b'{"errorType": "Boom", "errorMessage": "x"}', {"X-Amz-Function-Error": "Unhandled"}),
    "not JSON": http("200 OK", b"<html>"),
    "no result": http("200 OK", b'{"model": null}'),
}


@pytest.mark.parametrize("answer", PERMANENT_ANSWERS.values(), ids=PERMANENT_ANSWERS.keys())
def test_a_permanent_failure_is_never_tried_again(peer, answer):
    error, sent = tries(peer, answer)
    assert error.kind not in TRANSIENT and sent == 1


def test_the_stack_clients_own_429_retries_are_its_attempts_not_more(peer):
    server = peer(raw(http("429 Too Many", b"{}", {"X-Amzn-ErrorType": "TooManyRequestsException"})))
    with pytest.raises(FunctionError) as caught:
        remote(server.endpoint).invoke({"Records": []}, attempts=3)
    assert caught.value.kind == "TooManyRequestsException" and len(server.requests) == 3


# -- 3. names of every shape -------------------------------------------------------------------------------------------

@pytest.fixture
def api():
    """The stack's real Invoke API in process, with a stand-in pool answering the event's own id."""
    asked = []

    class Instance:
        index = 0

    def pool_invoke(event):
        asked.append(event)
        return Invocation({**EMPTY, "id": event.get("id") if isinstance(event, dict) else None},
                          Report(billed_ms=1.0), 1.0, ["START"]), Instance()

    with serving(pool_invoke, (NAME,), Admission(64, 256)) as api:
        api.asked = asked
        yield api


RESOLVED = {"the name": NAME, "$LATEST": f"{NAME}:$LATEST", "a full ARN": f"arn:aws:lambda:eu-west-1:123456789012:function:{NAME}",
            "an ARN with $LATEST": f"arn:aws:lambda:eu-west-1:123456789012:function:{NAME}:$LATEST",
            "a partition's ARN": f"arn:aws-cn:lambda:cn-north-1:123456789012:function:{NAME}",
            "a partial ARN": f"123456789012:function:{NAME}"}


@pytest.mark.parametrize("function", RESOLVED.values(), ids=RESOLVED.keys())
def test_a_name_lambda_would_resolve_reaches_the_function(api, function):
    answer = invoke(local_target(api.endpoint, function), {"Records": [], "id": 7}, backoff=0)
    assert answer.response["id"] == 7 and answer.attempts == 1


NOT_RESOLVED = {"empty": "", "a space": " ", "spaces": "rcyc classifier", "unicode": "rcyc-clässifier", "emoji": "🙂",
                "a slash": f"{NAME}/x", "dot dot": "..", "dot": ".", "dot dot slash": f"../{NAME}",
                "a query": f"{NAME}?Qualifier=$LATEST", "a fragment": f"{NAME}#x", "a percent": f"{NAME}%2F",
                "a lone percent": "%", "a version": f"{NAME}:1", "an alias": f"{NAME}:prod", "two qualifiers": f"{NAME}:$LATEST:1",
                "another function": "someone-else", "another function's ARN": "arn:aws:lambda:us-east-1:123456789012:function:x",
                "a long name": "n" * 10_000, "a very long name": "n" * 300_000,
                "a NUL": f"{NAME}\x00", "CRLF": f"{NAME}\r\nX-Amz-Invocation-Type: Event", "an escape": "\x1b[2J",
                "an undecodable byte": f"{NAME}\udcff", "a lone surrogate": "\ud800"}


@pytest.mark.parametrize("function", NOT_RESOLVED.values(), ids=NOT_RESOLVED.keys())
def test_a_name_lambda_would_not_resolve_is_one_permanent_error_and_never_another_path(api, peer, function):
    with pytest.raises(FunctionError) as caught:
        invoke(local_target(api.endpoint, function), {"Records": []}, backoff=0)
    one_line(caught.value)
    assert caught.value.kind not in TRANSIENT and api.asked == []
    # what the client asks for, seen by a peer: the Invoke path with the name as one segment, nothing else
    server = peer(raw(http("404 Not Found", b"{}", {"X-Amzn-ErrorType": "ResourceNotFoundException"})))
    with pytest.raises(FunctionError):
        invoke(local_target(server.endpoint, function), {"Records": []}, backoff=0)
    for request in server.requests:
        method, target, version = request["line"].split(" ")
        path = urlsplit(target).path
        assert method == "POST" and version == "HTTP/1.1" and "?" not in target and "#" not in target
        assert path.startswith("/2015-03-31/functions/") and path.endswith("/invocations") and path.count("/") == 4
        assert request["headers"].get("x-amz-invocation-type") == "RequestResponse"


# -- 5. many threads, one client -----------------------------------------------------------------------------------------

def test_many_threads_sharing_one_client_each_get_their_own_answer(api):
    stack, answers, failures = remote(api.endpoint), {}, []
    api.faults.configure({"next": 20, "status": 429})

    def work(n: int):
        for m in range(8):
            event = {"Records": [], "id": n * 100 + m}
            try:
                answers[event["id"]] = invoke(local_target(api.endpoint), event, backoff=0).response["id"]
                assert stack.invoke(event, attempts=6).response["id"] == event["id"]
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures or all(isinstance(f, FunctionError) and f.kind == "TooManyRequestsException" for f in failures), failures[:3]
    assert all(key == value for key, value in answers.items()) and len(answers) + len(failures) >= 24 * 8 - 20


# -- 4 (in process). classify's run against a peer: one event's failure, a hostile answer, a dead stack --------------------

@pytest.fixture
def s3(moto_in_process):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps({"manifest": "m.json", **MODEL}).encode())
    for n in range(12):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n:02d}.jpg", Body=b"photo %d" % n)
    return s3


def keys_of(request) -> list[str]:
    return [unquote_plus(r["s3"]["object"]["key"]) for r in json.loads(request["body"])["Records"]]


def results_for(keys: list[str], model=MODEL, **changes) -> dict:
    results = [{"record": n, "key": k, "bucket": BUCKET, "label": "boxes", "confidence": 0.9,
                "scores": {label: 0.9 if label == "boxes" else 0.025 for label in LABELS}} for n, k in enumerate(keys)]
    return {"results": results, "errors": [], "skipped": [], "model": model, **changes}


def run_against(s3, behaviour, peer, pid: int = 1, **options) -> tuple[dict, Peer]:
    server = peer(behaviour)
    target = Target("local", None, NAME, server.endpoint, 1024, "x86_64", 60, None, BUCKET, stack=remote(server.endpoint, pid))
    summary = classify(ClassifyOptions(uri=f"s3://{BUCKET}/photos/", local=True, concurrency=2, batch_size=3, **options), target, s3)
    return summary, server


def test_an_event_that_fails_costs_only_its_own_records(s3, peer, tmp_path):
    def some_fail(connection, request):
        keys = keys_of(request)
        if "photos/04.jpg" in keys:
            connection.sendall(http("404 Not Found", b"{}", {"X-Amzn-ErrorType": "ResourceNotFoundException"}))
        elif "photos/08.jpg" in keys:
            connection.sendall(http("200 OK", json.dumps({"errorType": "Boom", "errorMessage": "\n" + "e" * 1_000_000}).encode(),
                                    {"X-Amz-Function-Error": "Unhandled"}))
        else:
            connection.sendall(http("200 OK", json.dumps(results_for(keys)).encode()))

    summary, _ = run_against(s3, some_fail, peer, output=tmp_path / "out.jsonl")
    assert summary["classified"] == 6 and summary["errors"] == {"ResourceNotFoundException": 3, "Boom": 3}
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(len(line) < 2000 for line in lines)  # the megabyte message is not in each record
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix="results/photos/")["KeyCount"]
    assert stored == 6


HOSTILE_ANSWERS = {
    "a model that is a string": lambda keys: results_for(keys, model="m"),
    "a model that is a list": lambda keys: results_for(keys, model=["m"]),
    "a model whose sha256 is a list": lambda keys: results_for(keys, model={"name": "m", "version": "1", "sha256": ["a"]}),
    "a label that is a list": lambda keys: {**results_for(keys), "results": [{**e, "label": ["boxes"]} for e in results_for(keys)["results"]]},
    "a label that is no class": lambda keys: {**results_for(keys), "results": [{**e, "label": "cats"} for e in results_for(keys)["results"]]},
    "scores that are a string": lambda keys: {**results_for(keys), "results": [{**e, "scores": "x"} for e in results_for(keys)["results"]]},
    "an error that is an object": lambda keys: results_for(keys, results=[], errors=[{"record": n, "key": k, "bucket": BUCKET,
                                                                                      "error": {"x": 1}, "message": 7}
                                                                                     for n, k in enumerate(keys)]),
    "a skipped reason that is a list": lambda keys: results_for(keys, results=[], skipped=[{"record": n, "key": k, "bucket": BUCKET,
                                                                                           "reason": ["x"]}
                                                                                          for n, k in enumerate(keys)]),
    "results that are a number": lambda keys: results_for(keys, results=5),
    "a key that is a list": lambda keys: {**results_for(keys), "results": [{**e, "key": [e["key"]]} for e in results_for(keys)["results"]]},
    "a bucket that is a list": lambda keys: {**results_for(keys), "results": [{**e, "bucket": ["b"]} for e in results_for(keys)["results"]]},
}


@pytest.mark.parametrize("make", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_an_answer_that_is_not_the_result_contract_never_ends_the_run(s3, peer, tmp_path, make):
    def hostile(connection, request):
        connection.sendall(http("200 OK", json.dumps(make(keys_of(request))).encode()))

    summary, _ = run_against(s3, hostile, peer, output=tmp_path / "out.csv")
    assert summary["images"] == 12 and summary["classified"] + sum(summary["errors"].values()) == 12
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 13


@pytest.mark.parametrize("header", HOSTILE_REPORTS.values(), ids=HOSTILE_REPORTS.keys())
def test_a_hostile_report_never_ends_the_run(s3, peer, header):
    def answer(connection, request):
        connection.sendall(http("200 OK", json.dumps(results_for(keys_of(request))).encode(), {"X-Rcyc-Report": header}))

    summary, _ = run_against(s3, answer, peer)
    assert summary["classified"] == 12
    json.dumps(summary, allow_nan=False)  # --json prints it


def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped): a stack that died."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_stack_that_dies_mid_run_ends_the_run_with_one_error_and_keeps_what_finished(s3, peer, monkeypatch):
    monkeypatch.setattr(run_module, "invoke", _no_backoff(run_module.invoke))
    served = []

    def dies(connection, request):
        if len(served) >= 2:  # the stack is gone: what answers on its port refuses (it closes at once)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        served.append(request)
        connection.sendall(http("200 OK", json.dumps(results_for(keys_of(request))).encode()))

    with pytest.raises(RcycError) as caught:
        run_against(s3, dies, peer, pid=gone_pid(), force=True)
    error = caught.value
    assert not isinstance(error, FunctionError) or error.kind != "EmulatorError"
    assert "stack" in error.message and error.message.isprintable()
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix="results/photos/")["KeyCount"]
    assert stored == 3 * len(served)


def _no_backoff(invoke_):
    return lambda target, event, attempts=ATTEMPTS, backoff=1.0: invoke_(target, event, attempts, 0)
