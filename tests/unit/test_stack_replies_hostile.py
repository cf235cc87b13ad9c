"""Whatever answers on the stack's port with well-formed HTTP but not the stack's JSON (a list, a number, an
object of another shape, an error that is a string): ``local status`` and a warm ``invoke-local`` end with
one rcyc error (exit 6), never a KeyError or TypeError from the rendering."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from rcyc_core.errors import FunctionError

from rcyc_cli.local.session import Upload
from rcyc_cli.local.stack import client, warm


def serve_json(document: object) -> str:
    """A server on 127.0.0.1 answering every request with ``document`` as a 200 JSON body."""
    listener = socket.create_server(("127.0.0.1", 0))
    body = json.dumps(document).encode()

    def run():
        with listener:
            while True:
                connection, _ = listener.accept()
                with connection:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += connection.recv(65536)
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length")), 0)
                    while len(rest) < length:
                        rest += connection.recv(1 << 20)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def remote(endpoint: str) -> client.RemoteStack:
    return client.RemoteStack(client.StackState(
        pid=1, endpoint=endpoint, s3_endpoint="http://127.0.0.1:1", bucket="b", config=client.StackConfig(),
        runtime="process", started_at=0.0, owner="not-a-stack", rie_path="", model={}, instance_pids=[]))


NOT_A_STATUS = [[], 7, "ok", None, {}, {"s3_endpoint": "x", "bucket": "b"},
                {"s3_endpoint": "x", "bucket": "b", "instances": [{"instance": 0}]},
                {"s3_endpoint": "x", "bucket": "b", "instances": [{"instance": 0, "runtime": "process", "invocations": 1,
                                                                  "restarts": 0, "cold_start_ms": "fast"}]}]


@pytest.mark.parametrize("document", NOT_A_STATUS)
def test_local_status_of_something_that_is_not_the_stack_is_one_error(document):
    with pytest.raises(client.StackNotAnswering):
        client.describe(remote(serve_json(document)))


def test_the_stacks_own_status_shape_is_read():
    status = {"pid": 1, "s3_endpoint": "http://127.0.0.1:1", "bucket": "b", "function": {}, "runs": {},
              "instances": [{"instance": 0, "runtime": "process", "model": None, "invocations": 0,
                             "cold_start_ms": None, "restarts": 0}]}
    assert client.describe(remote(serve_json(status)))["instances"][0]["instance"] == 0


RESULT = {"record": 0, "bucket": "b", "key": "runs/x/images/a.jpg", "label": "boxes", "confidence": 0.9,
          "scores": {"boxes": 0.9, "glass_bottles": 0.1, "soda_cans": 0.0, "crushed_soda_cans": 0.0, "plastic_bottles": 0.0},
          "raw": [0.9, 0.1, 0.0, 0.0, 0.0]}
NOT_A_RUN = [[], 3, "done", {}, {"error": "boom"}, {"error": {"message": 5}}, {"error": {"message": "m", "logs": "x"}},
             {"response": {}, "invocations": [], "seconds": 0.1},  # no prefix
             {"response": [], "invocations": [], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {"results": {}}, "invocations": [], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {"results": [1]}, "invocations": [], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {}, "invocations": [{"report": {"bogus": 1}}], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {}, "invocations": [{"report": []}], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {}, "invocations": [3], "seconds": 0.1, "prefix": "runs/x/"},
             {"response": {}, "invocations": [], "seconds": "soon", "prefix": "runs/x/"}]


@pytest.mark.parametrize("document", NOT_A_RUN)
def test_a_warm_run_answered_by_something_that_is_not_the_stack_is_one_function_error(document):
    upload = Upload(name="a.jpg", body=b"x", content_type="image/jpeg")
    with pytest.raises(FunctionError) as caught:
        warm.run_on_stack(remote(serve_json(document)), [upload], None, 1, 1)
    assert "stack" in caught.value.message


def test_the_stacks_own_run_answer_shape_is_read():
    answer = {"response": {"results": [RESULT], "errors": [], "skipped": []}, "seconds": 0.5, "prefix": "runs/x/",
              "invocations": [{"response": None, "report": {"init_ms": None, "duration_ms": 3.0, "billed_ms": 3.0,
                                                            "memory_mb": 1024, "peak_mb": 80.5, "memory_enforced": False},
                               "wall_ms": 4.0, "logs": ["a line"]}]}
    upload = Upload(name="a.jpg", body=b"x", content_type="image/jpeg")
    got = warm.run_on_stack(remote(serve_json(answer)), [upload], None, 1, 1)
    assert got["invocations"][0].report.duration_ms == 3.0 and got["prefix"] == "runs/x/"


@pytest.mark.parametrize("document", [[], {"s3_endpoint": "x"}])
def test_a_living_stack_answering_what_no_stack_says_is_not_called_slow(document, monkeypatch):
    # "did not answer in 2 s: it is stopped or overloaded" was said of every failure, also of an answer given at
    # once: only a silence is called slow; a wrong answer is named as such, with the address it came from
    endpoint = serve_json(document)
    state = remote(endpoint).state
    monkeypatch.setattr(client, "holder", lambda: {"pid": 1, "owner": "not-a-stack"})
    monkeypatch.setattr(client, "read_state", lambda: {"pid": 1, "endpoint": endpoint, "owner": "not-a-stack", "config": {}})
    monkeypatch.setattr(client, "typed_state", lambda written: state)
    monkeypatch.setattr(client.reaper, "sweep_orphans", lambda: None)
    with pytest.raises(client.StackNotAnswering) as caught:
        client.find()
    assert "in 2 s" not in caught.value.message and "overloaded" not in caught.value.message
    assert endpoint in caught.value.message
    assert "not one it gives" in caught.value.message or "not a JSON object" in caught.value.message
