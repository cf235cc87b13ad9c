"""The warm stack's Lambda Invoke API, driven by clients nobody here wrote: boto3's Lambda client and the
AWS CLI (from PyPI, in a venv of its own: .ci/run installs it in .venv/awscli), plus raw sockets for
malformed requests.

One stack serves the whole module (1 instance, 1 waiting slot, a 5 s function timeout, a 1 s read timeout),
in a private RCYC_CACHE_HOME, stopped by stack.down() at the end, also on failure. Every AWS endpoint of
the clients points at the stack or at a dead loopback port, with throwaway keys: nothing can reach AWS.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcyc_cli.defaults import DEFAULT_FUNCTION, LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.function_spec import FunctionSpec
from rcyc_cli.local.stack import client as stack
from rcyc_cli.local.stack.errors import ApiError
from rcyc_cli.local.stack.protocol import (EVENT_PAYLOAD_LIMIT, LOG_TAIL_BYTES, SYNC_PAYLOAD_LIMIT, log_tail,
                                            resolve_function)
from rcyc_cli.local.emulator.ports import free_port
from tests.conftest import ROOT, class_images, examples, need
from tests.e2e.cloud_fixtures import set_faults

pytestmark = pytest.mark.e2e

ARN = f"arn:aws:lambda:us-east-1:012345678912:function:{DEFAULT_FUNCTION}"
THROWAWAY_KEYS = {"aws_access_key_id": "rcyc-test-not-a-key", "aws_secret_access_key": "rcyc-test-not-a-secret"}
FUNCTION_TIMEOUT = 5  # seconds: room for a cold restart (after a timeout) on a busy 2-core machine


def aws_cli() -> Path:
    """The AWS CLI: $RCYC_AWS_CLI, or the venv of its own that .ci/run installs in .venv/awscli."""
    return Path(os.environ.get("RCYC_AWS_CLI") or ROOT / ".venv" / "awscli" / "bin" / "aws")


@pytest.fixture(scope="module")
def local_stack(rie_path, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("RCYC_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    patch.delenv("AWS_PROFILE", raising=False)
    try:
        yield stack.up(stack.StackConfig(instances=1, max_waiting=1, event_queue=4, read_timeout=1.0, function_name=DEFAULT_FUNCTION,
                                         function=FunctionSpec(timeout=FUNCTION_TIMEOUT, rie=str(rie_path))))
    finally:
        stack.down()
        patch.undo()


@pytest.fixture(scope="module")
def image_key(local_stack) -> str:
    """A fixture image in the stack's bucket."""
    label, path = class_images()[0]
    s3 = boto3.client("s3", endpoint_url=local_stack.state.s3_endpoint, region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    s3.upload_file(str(path), local_stack.state.bucket, "images/api.jpg")
    return "images/api.jpg"


def s3_event(stack_: stack.RemoteStack, key: str, count: int = 1) -> dict:
    record = {"s3": {"bucket": {"name": stack_.state.bucket}, "object": {"key": key}}}
    return {"Records": [record] * count}


@pytest.fixture(scope="module")
def slow_event(local_stack, image_key) -> bytes:
    """An event that keeps the instance busy past the function's timeout: 30,000 records of one image (2.7 MB;
    ~30 ms each on the build machine, so even a function 100 times faster would still time out)."""
    return json.dumps(s3_event(local_stack, image_key, 30_000)).encode()


def lambda_client(stack_: stack.RemoteStack, attempts: int = 1):
    return boto3.client("lambda", endpoint_url=stack_.endpoint_url, region_name=LOCAL_REGION, **THROWAWAY_KEYS,
                        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=60))


def status(stack_: stack.RemoteStack) -> dict:
    return stack_.status()


def error_of(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def assert_error(error: ClientError, code: str, status_code: int) -> None:
    assert error.response["Error"]["Code"] == code, error.response
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status_code
    assert error.response["Error"]["Message"]


def still_answers(stack_: stack.RemoteStack) -> None:
    """A valid invoke right now gets the function's answer."""
    connection = http.client.HTTPConnection("127.0.0.1", int(stack_.endpoint_url.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.request("POST", f"/2015-03-31/functions/{DEFAULT_FUNCTION}/invocations", body=b'{"warmup": true}')
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 200, body[:300]
    assert (json.loads(body).get("model") or {}).get("name") == "fixture-psu", (body[:500], reply.getheaders())


@pytest.fixture
def faults_off(local_stack):
    yield
    set_faults(local_stack, {"next": 0, "fraction": 0})


# -- the AWS CLI ------------------------------------------------------------------------------------------

class Cli:
    def __init__(self, stack_: stack.RemoteStack, home: Path):
        need(aws_cli().is_file(), f"the AWS CLI ({aws_cli()}; .ci/run installs it, or set RCYC_AWS_CLI)")
        self.stack, self.home = stack_, home
        self.dead = f"http://127.0.0.1:{free_port()}"

    def env(self) -> dict:
        nowhere = str(self.home / "no-such-file")
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8",
                "AWS_ACCESS_KEY_ID": THROWAWAY_KEYS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": THROWAWAY_KEYS["aws_secret_access_key"],
                "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION,
                "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ENDPOINT_URL": self.stack.endpoint_url, "AWS_ENDPOINT_URL_LAMBDA": self.stack.endpoint_url,
                "AWS_ENDPOINT_URL_STS": self.dead, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard", "AWS_PAGER": ""}

    def invoke(self, *args: str, payload: str | None = "{}") -> tuple[subprocess.CompletedProcess, dict, bytes]:
        out = self.home / "out.json"
        out.unlink(missing_ok=True)
        command = [str(aws_cli()), "lambda", "invoke", "--endpoint-url", self.stack.endpoint_url, *args]
        if payload is not None:
            command += ["--payload", payload]
        done = subprocess.run(command + [str(out)], env=self.env(), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, cwd=self.home)
        meta = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}
        return done, meta, out.read_bytes() if out.exists() else b""


@pytest.fixture
def cli(local_stack, tmp_path):
    return Cli(local_stack, tmp_path)


# -- every row of the issue, with boto3 --------------------------------------------------------------------

def test_boto3_configured_name_and_its_arn_forms_answer_with_the_five_way_result(local_stack, image_key):
    client = lambda_client(local_stack)
    event = json.dumps(s3_event(local_stack, image_key))
    for name, qualifier in [(DEFAULT_FUNCTION, None), ("function", None), (ARN, None), (f"{ARN}:$LATEST", None),
                            (f"012345678912:function:{DEFAULT_FUNCTION}", None), (DEFAULT_FUNCTION, "$LATEST")]:
        reply = client.invoke(FunctionName=name, Payload=event, **({"Qualifier": qualifier} if qualifier else {}))
        assert reply["StatusCode"] == 200 and reply["ExecutedVersion"] == "$LATEST", name
        assert "FunctionError" not in reply and "LogResult" not in reply
        result = json.loads(reply["Payload"].read())["results"][0]
        assert result["label"] == class_images()[0][0] and len(result["scores"]) == 5


def test_boto3_unknown_function_version_or_alias_is_resource_not_found(local_stack):
    client = lambda_client(local_stack)
    for kwargs in [{"FunctionName": "other-function"}, {"FunctionName": f"{DEFAULT_FUNCTION}:prod"},
                   {"FunctionName": "arn:aws:lambda:us-east-1:012345678912:function:other"},
                   {"FunctionName": DEFAULT_FUNCTION, "Qualifier": "7"}]:
        error = error_of(lambda: client.invoke(Payload=b"{}", **kwargs))
        assert isinstance(error, client.exceptions.ResourceNotFoundException), kwargs
        assert_error(error, "ResourceNotFoundException", 404)
        assert error.response["Type"] == "User"


def test_boto3_bad_invocation_type_or_contradicting_qualifier_is_invalid_parameter(local_stack):
    client = lambda_client(local_stack)
    for kwargs in [{"FunctionName": DEFAULT_FUNCTION, "InvocationType": "Sometimes"},
                   {"FunctionName": f"{DEFAULT_FUNCTION}:$LATEST", "Qualifier": "prod"}]:
        error = error_of(lambda: client.invoke(Payload=b"{}", **kwargs))
        assert isinstance(error, client.exceptions.InvalidParameterValueException), kwargs
        assert_error(error, "InvalidParameterValueException", 400)


def test_function_name_forms():
    names = (DEFAULT_FUNCTION, "function")
    for name in [DEFAULT_FUNCTION, "function", f"{DEFAULT_FUNCTION}:$LATEST", ARN, f"{ARN}:$LATEST",
                 f"arn:aws-cn:lambda:cn-north-1:012345678912:function:{DEFAULT_FUNCTION}", f"123456789012:function:{DEFAULT_FUNCTION}"]:
        assert resolve_function(name, {}, names) == "$LATEST", name
    assert resolve_function(DEFAULT_FUNCTION, {"Qualifier": ["$LATEST"]}, names) == "$LATEST"
    for name in ["", "other", f"{DEFAULT_FUNCTION}:1", f"{DEFAULT_FUNCTION}:prod", f"arn:aws:lambda:us-east-1:12:function:{DEFAULT_FUNCTION}",
                 f"arn:aws:s3:::{DEFAULT_FUNCTION}", "x" * 65, f"{DEFAULT_FUNCTION}/x", "function\x00"]:
        with pytest.raises(ApiError) as caught:
            resolve_function(name, {}, names)
        assert caught.value.status == 404 and caught.value.error_type == "ResourceNotFoundException", name


def test_the_stack_answers_to_rcyc_function_as_the_commands_do(monkeypatch):
    monkeypatch.delenv("RCYC_FUNCTION", raising=False)
    assert stack.StackConfig().function_name == DEFAULT_FUNCTION
    monkeypatch.setenv("RCYC_FUNCTION", "my-classifier")
    assert stack.StackConfig().function_name == "my-classifier"


def test_boto3_log_tail_is_the_base64_log_with_the_report_line(local_stack, image_key):
    reply = lambda_client(local_stack).invoke(FunctionName=DEFAULT_FUNCTION, LogType="Tail",
                                              Payload=json.dumps(s3_event(local_stack, image_key)))
    log = base64.b64decode(reply["LogResult"])
    assert 0 < len(log) <= LOG_TAIL_BYTES
    report = [line for line in log.decode().splitlines() if line.startswith("REPORT RequestId:")]
    assert len(report) == 1
    for figure in ("Duration:", "Billed Duration:", "Memory Size:"):
        assert figure in report[0]


def test_log_tail_keeps_the_last_4_kb():
    lines = [f"line {i} " + "x" * 100 for i in range(100)] + ["REPORT RequestId: r\tDuration: 1.00 ms"]
    tail = base64.b64decode(log_tail(lines))
    assert len(tail) == LOG_TAIL_BYTES and tail.endswith(b"REPORT RequestId: r\tDuration: 1.00 ms\n")


def test_boto3_payload_that_is_not_json_is_invalid_request_content(local_stack):
    client = lambda_client(local_stack)
    for payload in [b"{not json", b"\xff\xfe", b'{"a": 1} trailing']:
        error = error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=payload))
        assert isinstance(error, client.exceptions.InvalidRequestContentException)
        assert_error(error, "InvalidRequestContentException", 400)
    still_answers(local_stack)


def test_boto3_event_is_202_and_runs_asynchronously_dry_run_is_204(local_stack):
    client = lambda_client(local_stack)
    before = status(local_stack)["function"]["events"]["succeeded"]
    reply = client.invoke(FunctionName=DEFAULT_FUNCTION, InvocationType="Event", Payload=b'{"warmup": true}')
    assert reply["StatusCode"] == 202 and reply["Payload"].read() == b""
    deadline = time.monotonic() + 30
    while status(local_stack)["function"]["events"]["succeeded"] == before:
        assert time.monotonic() < deadline, "the queued event never ran"
        time.sleep(0.05)
    reply = client.invoke(FunctionName=DEFAULT_FUNCTION, InvocationType="DryRun", Payload=b"{}")
    assert reply["StatusCode"] == 204 and reply["Payload"].read() == b""
    error = error_of(lambda: client.invoke(FunctionName="other", InvocationType="DryRun", Payload=b"{}"))
    assert_error(error, "ResourceNotFoundException", 404)


def test_boto3_payload_limits_are_6_mb_sync_and_256_kb_async(local_stack):
    client = lambda_client(local_stack)
    at_limit = b'{"pad": "' + b"x" * (SYNC_PAYLOAD_LIMIT - 11) + b'"}'
    assert len(at_limit) == SYNC_PAYLOAD_LIMIT
    assert client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=at_limit)["StatusCode"] == 200
    over = b'{"pad": "' + b"x" * (SYNC_PAYLOAD_LIMIT - 10) + b'"}'
    error = error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=over))
    assert isinstance(error, client.exceptions.RequestTooLargeException)
    assert_error(error, "RequestTooLargeException", 413)
    over_event = b'{"pad": "' + b"x" * (EVENT_PAYLOAD_LIMIT - 10) + b'"}'
    error = error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, InvocationType="Event", Payload=over_event))
    assert_error(error, "RequestTooLargeException", 413)
    still_answers(local_stack)


def run_in_background(call) -> tuple[threading.Thread, list]:
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_catch(call)), daemon=True)
    thread.start()
    return thread, outcome


def _catch(call):
    try:
        return call()
    except Exception as exc:
        return exc


def wait_in_flight(stack_: stack.RemoteStack, count: int) -> None:
    deadline = time.monotonic() + 30
    while status(stack_)["function"]["in_flight"] < count:
        assert time.monotonic() < deadline, "the slow invokes never got in"
        time.sleep(0.02)


@pytest.mark.slow  # waits out function timeouts
def test_boto3_every_instance_busy_and_queue_full_is_429_and_a_timeout_is_an_unhandled_function_error(local_stack, slow_event):
    client = lambda_client(local_stack)
    busy = [run_in_background(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=slow_event, LogType="Tail"))
            for _ in range(2)]  # one runs, one waits: capacity 2
    try:
        wait_in_flight(local_stack, 2)
        error = error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}"))
        assert isinstance(error, client.exceptions.TooManyRequestsException)
        assert_error(error, "TooManyRequestsException", 429)
    finally:
        for thread, _ in busy:
            thread.join(timeout=60)
    for _, outcome in busy:
        reply = outcome[0]
        assert not isinstance(reply, Exception), reply
        assert reply["StatusCode"] == 200 and reply["FunctionError"] == "Unhandled"
        error = json.loads(reply["Payload"].read())
        assert error["errorType"] == "Sandbox.Timedout" and "Task timed out" in error["errorMessage"]
        assert b"REPORT RequestId" in base64.b64decode(reply["LogResult"])
    still_answers(local_stack)


def runtime_pids(stack_: stack.RemoteStack) -> list[int]:
    """The stack's function runtimes: the processes the emulator started (they carry AWS_LAMBDA_RUNTIME_API)
    with this stack as their owner."""
    owner, found = f"RCYC_OWNER_PID={stack_.state.pid}".encode(), []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if owner in environ and any(item.startswith(b"AWS_LAMBDA_RUNTIME_API=") for item in environ):
            found.append(int(entry.name))
    return found


def test_a_runtime_killed_mid_invoke_is_lambdas_runtime_exit_error_and_the_instance_serves_on(local_stack, slow_event):
    # A crash, os._exit or an out-of-memory kill: the emulator answers 502 with Lambda's own error object.
    # That is the function's failure (200, Unhandled, Runtime.ExitError), as Lambda reports it, not a 502
    # "the emulator did not answer".
    client = lambda_client(local_stack)
    thread, outcome = run_in_background(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=slow_event, LogType="Tail"))
    try:
        wait_in_flight(local_stack, 1)
        time.sleep(0.5)  # into the handler
        [pid] = runtime_pids(local_stack)
        os.kill(pid, 9)
    finally:
        thread.join(timeout=60)
    reply = outcome[0]
    assert not isinstance(reply, Exception), reply
    assert reply["StatusCode"] == 200 and reply["FunctionError"] == "Unhandled", reply
    error = json.loads(reply["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError" and "signal: killed" in error["errorMessage"], error
    still_answers(local_stack)  # the emulator started a fresh runtime for the next invoke
    assert status(local_stack)["function"]["in_flight"] == 0


# -- the fault switch ---------------------------------------------------------------------------------------

def test_fault_switch_answers_the_next_n_invokes_with_the_status_then_serves(local_stack, faults_off):
    client = lambda_client(local_stack)
    for code, name in [(429, "TooManyRequestsException"), (500, "ServiceException"), (502, "502"), (503, "503")]:
        assert set_faults(local_stack, {"next": 1, "status": code})[0] == 200
        assert_error(error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}")), name, code)
        assert client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}")["StatusCode"] == 200
    # boto3's own retries get through two injected 503s
    set_faults(local_stack, {"next": 2, "status": 503})
    reply = lambda_client(local_stack, attempts=3).invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}")
    assert reply["StatusCode"] == 200 and reply["ResponseMetadata"]["RetryAttempts"] == 2
    with urllib.request.urlopen(local_stack.endpoint_url + "/rcyc/faults", timeout=10) as answer:
        assert json.loads(answer.read())["next"] == 0


def test_fault_switch_fraction_and_bad_specs(local_stack, faults_off):
    client = lambda_client(local_stack)
    assert set_faults(local_stack, {"fraction": 1.0, "status": 500})[1]["fraction"] == 1.0
    for _ in range(3):
        assert_error(error_of(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}")), "ServiceException", 500)
    set_faults(local_stack, {"fraction": 0.5, "status": 429, "seed": 7})
    outcomes = [_catch(lambda: client.invoke(FunctionName=DEFAULT_FUNCTION, Payload=b"{}")) for _ in range(20)]
    assert 0 < sum(isinstance(o, ClientError) for o in outcomes) < 20
    for spec in [{"next": -1}, {"status": 404}, {"fraction": 2}, {"what": 1}, [], {"next": "3"}]:
        code, body = set_faults(local_stack, spec)
        assert code == 400 and body["Type"] == "User", spec
    set_faults(local_stack, {"next": 0, "fraction": 0})
    still_answers(local_stack)


# -- every row of the issue, with the AWS CLI ----------------------------------------------------------------

def test_cli_configured_name_and_emulator_alias_answer(cli, local_stack, image_key):
    event = json.dumps(s3_event(local_stack, image_key))
    for name in (DEFAULT_FUNCTION, "function", ARN):
        done, meta, payload = cli.invoke("--function-name", name, payload=event)
        assert done.returncode == 0, done.stderr
        assert meta == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
        assert json.loads(payload)["results"][0]["label"] == class_images()[0][0]
    done, _, _ = cli.invoke("--function-name", "other-function")
    assert done.returncode == 255 and "(ResourceNotFoundException)" in done.stderr


def test_cli_log_tail(cli):
    done, meta, payload = cli.invoke("--function-name", DEFAULT_FUNCTION, "--log-type", "Tail", payload='{"warmup": true}')
    assert done.returncode == 0, done.stderr
    assert "REPORT RequestId" in base64.b64decode(meta["LogResult"]).decode()
    assert json.loads(payload)["model"]["name"] == "fixture-psu"


def test_cli_payload_not_json_is_400_and_the_stack_keeps_serving(cli, local_stack):
    done, _, _ = cli.invoke("--function-name", DEFAULT_FUNCTION, payload="{not json")
    assert done.returncode == 255 and "(InvalidRequestContentException)" in done.stderr
    assert "Connection was closed" not in done.stderr
    still_answers(local_stack)


def test_cli_event_is_202_and_dry_run_is_204(cli):
    done, meta, payload = cli.invoke("--function-name", DEFAULT_FUNCTION, "--invocation-type", "Event")
    assert done.returncode == 0 and meta["StatusCode"] == 202 and payload == b""
    done, meta, payload = cli.invoke("--function-name", DEFAULT_FUNCTION, "--invocation-type", "DryRun")
    assert done.returncode == 0 and meta["StatusCode"] == 204 and payload == b""


@pytest.mark.slow  # waits out function timeouts
def test_cli_too_large_throttled_and_function_error(cli, local_stack, slow_event, tmp_path, faults_off):
    big = tmp_path / "big.json"
    big.write_bytes(b'{"pad": "' + b"x" * SYNC_PAYLOAD_LIMIT + b'"}')
    done, _, _ = cli.invoke("--function-name", DEFAULT_FUNCTION, payload=f"file://{big}")
    assert done.returncode == 255 and "(RequestTooLargeException)" in done.stderr
    slow = tmp_path / "slow.json"
    slow.write_bytes(slow_event)
    busy = [run_in_background(lambda: cli.invoke("--function-name", DEFAULT_FUNCTION, payload=f"file://{slow}"))
            for _ in range(2)]  # one runs, one waits: capacity 2
    try:
        wait_in_flight(local_stack, 2)
        done, _, _ = cli.invoke("--function-name", DEFAULT_FUNCTION)
        assert done.returncode == 255 and "(TooManyRequestsException)" in done.stderr
    finally:
        for thread, _ in busy:
            thread.join(timeout=60)
    for _, outcome in busy:
        done, meta, payload = outcome[0]
        assert done.returncode == 0 and meta["StatusCode"] == 200 and meta["FunctionError"] == "Unhandled"
        assert json.loads(payload)["errorType"] == "Sandbox.Timedout"
    set_faults(local_stack, {"next": 1, "status": 500})
    done, _, _ = cli.invoke("--function-name", DEFAULT_FUNCTION)
    assert done.returncode == 255 and "(ServiceException)" in done.stderr


# -- rcyc's own client ----------------------------------------------------------------------------------------

def test_remote_stack_invoke_has_the_report_figures_and_the_log(local_stack, image_key):
    answer = local_stack.invoke(s3_event(local_stack, image_key))
    assert answer.response["results"][0]["label"] == class_images()[0][0]
    assert answer.report.duration_ms is not None and answer.report.memory_mb == 1024, (answer.report, answer.logs)
    assert any(line.startswith("REPORT RequestId") for line in answer.logs), answer.logs


# -- malformed requests over raw sockets -------------------------------------------------------------------

def port_of(stack_: stack.RemoteStack) -> int:
    return int(stack_.endpoint_url.rsplit(":", 1)[1])


def read_reply(sock: socket.socket, seconds: float = 15.0) -> bytes:
    """Everything the server sends until it closes or goes quiet after a full answer."""
    sock.settimeout(seconds)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        while data.startswith(b"HTTP/1.1 100 "):  # an interim "100 Continue": the answer follows
            data = data.partition(b"\r\n\r\n")[2]
        head, _, body = data.partition(b"\r\n\r\n")
        length = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        if _ and length and len(body) >= int(length[0]):
            break
    return data


def check_reply(data: bytes, method: str = "POST") -> int:
    """A complete HTTP answer; errors are JSON with an error type (the body too, but for HEAD). Returns the status."""
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    status_code = int(head.split(b" ", 2)[1])
    length = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    if length and method != "HEAD":
        assert len(body) == int(length[0]), f"{len(body) - int(length[0])} bytes after the answer (a second reply?)"
    if status_code >= 400:
        assert b"x-amzn-errortype:" in head.lower(), head
        if method != "HEAD":
            assert isinstance(json.loads(body), dict)
    return status_code


def test_a_lying_content_length_is_answered_after_the_read_timeout(local_stack):
    # A hang would fail on the socket's own timeout, not on a wall-clock assert.
    with socket.create_connection(("127.0.0.1", port_of(local_stack)), timeout=60) as sock:
        sock.sendall(b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100\r\n\r\n{\"a\":")
        assert check_reply(read_reply(sock)) == 400
    for claim, status_code in [(b"99999999999999", 413), (b"9" * 5000, 413), ("\u00b2".encode("latin-1"), 400), (b"0x10", 400)]:
        with socket.create_connection(("127.0.0.1", port_of(local_stack))) as sock:  # answered at once
            sock.sendall(b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nContent-Length: " + claim + b"\r\n\r\n")
            assert check_reply(read_reply(sock)) == status_code, claim[:20]
    still_answers(local_stack)


def test_many_silent_half_requests_do_not_block_a_valid_invoke(local_stack):
    sockets = []
    try:
        for _ in range(100):  # each sends half a request line and then nothing
            sock = socket.create_connection(("127.0.0.1", port_of(local_stack)), timeout=10)
            sockets.append(sock)
            sock.sendall(b"POST /2015-03-31/functions/function/invoc")
        still_answers(local_stack)  # within its client's timeout, while 100 half requests hang on
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow  # waits out a slow function
def test_a_client_gone_while_its_function_runs_frees_its_slot(local_stack, slow_event):
    with socket.create_connection(("127.0.0.1", port_of(local_stack))) as sock:
        sock.sendall(f"POST /2015-03-31/functions/{DEFAULT_FUNCTION}/invocations HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(slow_event)}\r\n\r\n".encode() + slow_event)
        wait_in_flight(local_stack, 1)
    deadline = time.monotonic() + FUNCTION_TIMEOUT + 30
    while status(local_stack)["function"]["in_flight"]:
        assert time.monotonic() < deadline, "the slot of a client that went away was never given back"
        time.sleep(0.05)
    still_answers(local_stack)


INVOKE_PATHS = st.sampled_from([
    f"/2015-03-31/functions/{DEFAULT_FUNCTION}/invocations", "/2015-03-31/functions/function/invocations",
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A012345678912%3Afunction%3Arcyc-function/invocations",
    "/2015-03-31/functions//invocations", "/2015-03-31/functions/a/b/invocations", "/", "/rcyc/status", "/rcyc/faults",
    "/2015-03-31/functions/%ff%fe/invocations?Qualifier=%00", "*", "http://127.0.0.1/x",
])
# Mostly POSTs to Invoke paths (where bodies are read), sometimes anything at all.
PATHS = st.one_of(INVOKE_PATHS, INVOKE_PATHS, INVOKE_PATHS,
                  st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300).map(lambda t: "/" + t))
METHODS = st.one_of(st.just("POST"), st.just("POST"),
                    st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "BREW", "POST POST", ""]))
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"), max_size=80)
EXTRA_HEADERS = st.lists(st.tuples(
    st.sampled_from(["X-Amz-Invocation-Type", "X-Amz-Log-Type", "Transfer-Encoding", "Expect", "Content-Type",
                     "X-Rcyc-Report", "Connection", "X-Junk"]),
    st.sampled_from(["Event", "DryRun", "RequestResponse", "Tail", "chunked", "100-continue", "close", ""]) | HEADER_VALUES,
), max_size=5)


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["json", "bytes", "big"]))
    if kind == "json":
        return json.dumps(draw(st.recursive(st.none() | st.integers() | st.text(max_size=20),
                                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                                            max_leaves=20))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=2000))
    size = draw(st.sampled_from([EVENT_PAYLOAD_LIMIT + 1, SYNC_PAYLOAD_LIMIT - 1, SYNC_PAYLOAD_LIMIT + 1, 7 * 1024 * 1024]))
    return draw(st.binary(min_size=1, max_size=16)) * (size // 16 + 1)


# derandomize: the same examples on every run, so a failure is reproducible (it used to flake: a second,
# unasked-for reply on the same connection was read as part of the first).
@settings(max_examples=examples(400), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(method=METHODS, path=PATHS, body=bodies(), headers=EXTRA_HEADERS,
       length=st.sampled_from(["exact", "none", "less", "more", "garbage", "negative", "huge", "endless", "not-ascii",
                                "zeros", "twice"]),
       ending=st.sampled_from(["wait", "half-close", "hang-up"]), cut=st.floats(0, 1))
def test_malformed_requests_never_stop_the_next_valid_invoke(local_stack, method, path, body, headers, length, ending, cut):
    declared = {"exact": str(len(body)), "less": str(len(body) // 2), "more": str(len(body) + 1000), "garbage": "12abc",
                "negative": "-5", "huge": "9" * 20, "endless": "9" * 5000, "not-ascii": "\u00b3", "zeros": f"000{len(body)}",
                "twice": None, "none": None}[length]
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1", "replace"), b"Host: 127.0.0.1"]
    if declared is not None:
        lines.append(f"Content-Length: {declared}".encode("latin-1"))
    if length == "twice":
        lines += [f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body) + 1}".encode()]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    request = b"\r\n".join(lines) + b"\r\n\r\n"
    sent = body if ending != "hang-up" else body[:int(len(body) * cut)]
    with socket.create_connection(("127.0.0.1", port_of(local_stack)), timeout=30) as sock:
        try:
            sock.sendall(request + sent)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all: its answer may still be readable
        if ending == "half-close":
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if ending != "hang-up":
            data = read_reply(sock)
            if data:  # an answer, when there is one, is one whole HTTP answer, and nothing follows it
                check_reply(data, method)
                assert read_reply(sock, 0.2) == b"", "a second reply on the same connection"
            elif method.strip() and " " not in method and ending == "wait":
                pytest.fail("a complete request got no answer")
    set_faults(local_stack, {"next": 0, "fraction": 0})  # in case a random body switched faults on
    still_answers(local_stack)
