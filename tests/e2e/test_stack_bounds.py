"""The warm stack is bounded (issue 20, invariants 2 and 3), against a real stack (emulators, embedded S3):
runs are admitted by count and bytes before their bodies are read (429 as Lambda throttles), a run's
objects are gone afterwards in every version, no deleted temp file stays open, the idle stop never ends a
run in flight, the stack answers a plain call with the default model whoever started it, and the Invoke
API never sends a second reply on one connection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rcyc_cli.function_spec import FunctionSpec
from rcyc_cli.local.stack import client as stack
from rcyc_cli.local.stack.protocol import RUN_PAYLOAD_LIMIT, RUNS_PATH
from tests.conftest import IMAGES, MODELS, ROOT

pytestmark = pytest.mark.e2e
IMAGE = IMAGES / "boxes" / "boxes_0.jpg"


@pytest.fixture
def own_cache(tmp_path, monkeypatch, rie_path):
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    try:
        yield tmp_path
    finally:
        stack.down()


def rcyc(*args, **env):
    return subprocess.run([sys.executable, "-m", "rcyc_cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]),
                                            "RCYC_KEEP_WARM": "1", **env})


def port(running) -> int:
    return int(running.endpoint_url.rsplit(":", 1)[1])


def half_run(running, size: int) -> socket.socket:
    """A run that announces ``size`` bytes and sends only the first few: in the stack until closed."""
    sock = socket.create_connection(("127.0.0.1", port(running)), timeout=30)
    sock.sendall(f"POST {RUNS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode() + b'{"images": [')
    return sock


def status_of(running) -> dict:
    return running.status()


def wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_runs_are_admitted_by_bytes_before_their_bodies_are_read(own_cache):
    running = stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=2))
    big = RUN_PAYLOAD_LIMIT // 2 + 1
    first = half_run(running, big)
    try:
        wait(lambda: status_of(running)["runs"]["in_flight"] == 1, 10, "the first run to be admitted")
        with socket.create_connection(("127.0.0.1", port(running)), timeout=30) as second:
            second.sendall(f"POST {RUNS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n".encode())
            head = second.recv(65536)
        assert head.startswith(b"HTTP/1.1 429 "), head[:200]
        assert b"TooManyRequestsException" in head
        # over the per-run limit: 413 whatever is in flight
        with socket.create_connection(("127.0.0.1", port(running)), timeout=30) as third:
            third.sendall(f"POST {RUNS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {RUN_PAYLOAD_LIMIT + 1}\r\n\r\n".encode())
            assert third.recv(65536).startswith(b"HTTP/1.1 413 ")
    finally:
        first.close()
    wait(lambda: status_of(running)["runs"] == {**status_of(running)["runs"], "in_flight": 0, "bytes": 0}, 30,
         "the half run to leave")
    answer = rcyc("invoke-local", IMAGE, "--json")  # and a real run is served again
    assert answer.returncode == 0, answer.stderr


def test_a_runs_objects_are_gone_in_every_version_and_no_deleted_file_stays_open(own_cache):
    running = stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=2))
    for _ in range(3):
        result = rcyc("invoke-local", IMAGES / "boxes", "--json")
        assert result.returncode == 0, result.stderr
    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION

    s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    assert s3.get_bucket_versioning(Bucket=running.state.bucket).get("Status") == "Enabled"
    versions = s3.list_object_versions(Bucket=running.state.bucket, Prefix="runs/")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    fds = Path(f"/proc/{running.state.pid}/fd")
    deleted = [os.readlink(fd) for fd in fds.iterdir() if os.readlink(fd).endswith("(deleted)")]
    assert deleted == [], deleted


def test_the_idle_stop_never_ends_a_run_in_flight(own_cache):
    running = stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=1, idle_seconds=1))
    pid = running.state.pid
    run = half_run(running, 1000)
    try:
        time.sleep(4)  # four idle periods with a run in the stack
        assert stack.running(pid), "the idle stop ended a stack with a run in flight"
    finally:
        run.close()
    wait(lambda: not stack.running(pid), 30, "the idle stop once the run left")


def test_a_plain_call_gets_the_default_model_whoever_started_the_stack(own_cache):
    first = rcyc("invoke-local", "--model", MODELS["softmax"], IMAGE, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["model"]["name"] == "fixture-softmax"
    plain = rcyc("invoke-local", IMAGE, "--json")
    predicted = rcyc("predict", IMAGE, "--json")
    assert json.loads(plain.stdout)["model"] == json.loads(predicted.stdout)["model"]


def test_classify_local_leaves_a_stack_that_stops_when_idle(own_cache):
    from rcyc_cli.classify.target import local_target
    from rcyc_cli.reporting import SILENT

    os.environ["RCYC_STACK_IDLE_SECONDS"] = "1"
    try:
        local_target("function", 1, SILENT)
    finally:
        del os.environ["RCYC_STACK_IDLE_SECONDS"]
    pid = stack.read_state()["pid"]
    wait(lambda: not stack.running(pid), 30, "classify --local's stack to stop when idle")


def test_a_stack_that_cannot_start_says_why_with_its_status(own_cache):
    missing_model = rcyc("local", "up", "--model", own_cache / "no-such-model")
    assert missing_model.returncode == 3 and "no-such-model does not exist" in missing_model.stderr, missing_model.stderr
    not_an_emulator = rcyc("local", "up", "--rie", "/bin/true")
    assert not_an_emulator.returncode in (4, 6) and "did not start: " in not_an_emulator.stderr
    assert "stopped in" not in not_an_emulator.stderr
    assert stack.holder() is None


def test_client_mistakes_are_400_and_a_key_that_is_not_a_string_is_an_invalid_record_on_every_path(own_cache):
    import urllib.error
    import urllib.request

    running = stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=1))
    mistakes = [(RUNS_PATH, {"images": []}), (RUNS_PATH, b'{"images": [], "concurrency": 1e309}'),
                (RUNS_PATH, {"images": [], "event": {"Records": 5}}), ("/rcyc/faults", {"seed": [1, 2]})]
    for path, body in mistakes:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(running.endpoint_url + path, data=data, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400, (path, body, refused.value.read())
    event = own_cache / "event.json"
    event.write_text(json.dumps({"Records": [{"s3": {"bucket": {"name": running.state.bucket}, "object": {"key": 5}}}]}))
    for extra in ([], ["--no-stack"]):
        result = rcyc("invoke-local", "--event", event, IMAGE, "--json", *extra)
        assert result.returncode == 7, result.stderr
        assert [e["error"] for e in json.loads(result.stdout)["errors"]] == ["InvalidRecord"]
