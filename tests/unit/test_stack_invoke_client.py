"""classify --local's events go through the stack's own Invoke API client (``RemoteStack.invoke``), not boto3.
Served here by the stack's real Invoke API handler, in process, with a stand-in pool: a refusal carries the
error type boto3 would raise, so classify's one retry policy tells transient refusals from the rest as on
AWS; a name or ARN with ':' reaches the stack; a hostile error type is never a kind."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from rcyc_core.errors import FunctionError

from rcyc_cli.classify.target import TRANSIENT, Target, invoke
from rcyc_cli.invocation import Invocation, Report
from rcyc_cli.local.stack import client
from rcyc_cli.local.stack.admission import Admission
from tests.stack_api import serving

NAME = "rcyc-classifier"
ANSWER = {"results": [], "errors": [], "skipped": [], "model": None}


class Instance:
    index = 0


@pytest.fixture
def api():
    asked = []

    def pool_invoke(event):
        asked.append(event)
        return Invocation(ANSWER, Report(billed_ms=12.0), 1.0, ["START", "REPORT"]), Instance()

    with serving(pool_invoke, (NAME,), Admission(1, 1)) as api:
        api.asked = asked
        yield api


def remote(endpoint: str) -> client.RemoteStack:
    return client.RemoteStack(client.StackState(
        pid=1, endpoint=endpoint, s3_endpoint="http://127.0.0.1:1", bucket="b",
        config=client.StackConfig(function_name=NAME), runtime="process", started_at=0.0, owner="t", rie_path="",
        model={}, instance_pids=[]))


def local_target(endpoint: str, function: str = NAME) -> Target:
    return Target("local", None, function, endpoint, 1024, "x86_64", 60, 1, "b", stack=remote(endpoint))


def test_an_answer_carries_the_response_and_the_report(api):
    answer = remote(api.endpoint).invoke({"Records": []}, attempts=1)
    assert answer.response == ANSWER and answer.report.billed_ms == 12.0 and api.asked == [{"Records": []}]


@pytest.mark.parametrize("function", [NAME, f"arn:aws:lambda:us-east-1:123456789012:function:{NAME}",
                                      f"{NAME}:$LATEST"])
def test_a_name_or_arn_the_stack_answers_to_reaches_it(api, function):
    assert invoke(local_target(api.endpoint, function), {"Records": []}).response == ANSWER


def test_an_unknown_function_is_lambdas_not_found_and_never_retried(api):
    with pytest.raises(FunctionError) as caught:
        invoke(local_target(api.endpoint, "someone-else"), {"Records": []}, backoff=0)
    assert caught.value.kind == "ResourceNotFoundException" and caught.value.kind not in TRANSIENT
    assert api.asked == []


@pytest.mark.parametrize("status, kind", [(429, "TooManyRequestsException"), (500, "ServiceException"),
                                          (502, "502"), (503, "503")])
def test_a_transient_refusal_is_named_as_boto3_would_and_classify_tries_again(api, status, kind):
    api.faults.configure({"next": 1, "status": status})
    with pytest.raises(FunctionError) as caught:
        remote(api.endpoint).invoke({"Records": []}, attempts=1)
    assert caught.value.kind == kind and kind in TRANSIENT
    api.faults.configure({"next": 1, "status": status})
    answer = invoke(local_target(api.endpoint), {"Records": []}, backoff=0)
    assert answer.attempts == 2 and answer.response == ANSWER and len(api.asked) == 1


def test_throttling_past_every_attempt_is_the_events_failure(api):
    api.faults.configure({"next": 10, "status": 429})
    with pytest.raises(FunctionError) as caught:
        invoke(local_target(api.endpoint), {"Records": []}, backoff=0)
    assert caught.value.kind == "TooManyRequestsException" and api.faults.to_dict()["next"] == 7  # 3 tries in all


def refusing(status_line: bytes, headers: bytes, body: bytes) -> str:
    """A server on 127.0.0.1 answering every request with this refusal."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run():
        with listener:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += connection.recv(65536)
                    connection.sendall(b"%s\r\n%sContent-Length: %d\r\n\r\n%s" % (status_line, headers, len(body), body))

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


HOSTILE_TYPES = {"spaces": b"Too Many", "escapes": b"\x1b[31mRed", "long": b"E" * 5000, "latin-1": b"Caf\xe9",
                 "a path": b"../../etc"}


@pytest.mark.parametrize("error_type", HOSTILE_TYPES.values(), ids=HOSTILE_TYPES.keys())
def test_a_hostile_error_type_is_never_a_kind(error_type):
    endpoint = refusing(b"HTTP/1.1 400 Bad Request", b"X-Amzn-ErrorType: %s\r\n" % error_type, b'{"Message": "\\u001b[2J"}')
    with pytest.raises(FunctionError) as caught:
        remote(endpoint).invoke({"Records": []}, attempts=1)
    assert caught.value.kind == "400"
    assert "\x1b" not in caught.value.message and len(caught.value.message) < 600


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"Message": 7}', b"\xff\xfe", b"[" * 100_000])
def test_any_refusal_body_is_one_error(body):
    endpoint = refusing(b"HTTP/1.1 413 Payload Too Large", b"X-Amzn-ErrorType: RequestTooLargeException\r\n", body)
    with pytest.raises(FunctionError) as caught:
        remote(endpoint).invoke({"Records": []}, attempts=1)
    assert caught.value.kind == "RequestTooLargeException" and "413" in caught.value.message
    assert json.dumps(caught.value.message)  # printable text, whatever the body was
