"""The warm path of invoke-local (issue 12): a call on a warm stack imports neither numpy, Pillow nor boto3
(the stack takes the image bytes and does the S3 work); with none running, invoke-local leaves one behind
that later calls use and that stops by itself when idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rcyc_cli.function_spec import FunctionSpec
from rcyc_cli.local.stack import client as stack
from tests.conftest import IMAGES

pytestmark = pytest.mark.e2e
# http.client (with the email parser and ssl it imports): the warm path posts through a plain socket (stack/loopback)
HEAVY = ("numpy", "PIL", "boto3", "botocore", "moto", "tensorflow", "http.client")
PROBE = (
    "import json, sys\n"
    "from rcyc_cli.main import cli\n"
    "try:\n"
    "    cli(sys.argv[1:], prog_name='rcyc')\n"
    "finally:\n"
    f"    print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
)


def rcyc(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def imported(result) -> list[str]:
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.fixture
def own_cache(tmp_path, monkeypatch, rie_path):
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    try:
        yield tmp_path
    finally:
        stack.down()


def test_a_warm_call_imports_no_numpy_pillow_or_boto3(own_cache):
    stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=2))
    image = IMAGES / "glass_bottles" / "glass_bottles_0.jpg"
    warm = rcyc("invoke-local", image, "--json")
    assert warm.returncode == 0, warm.stderr
    answer = json.loads(warm.stdout)
    assert answer["results"][0]["label"] == "glass_bottles" and "warm stack" in answer["invocation"]["runtime"]
    assert imported(warm) == []
    many = rcyc("invoke-local", IMAGES / "boxes", IMAGES / "soda_cans", "-c", "2", "--batch-size", "2", "--json")
    assert many.returncode == 0, many.stderr
    assert [r["label"] for r in json.loads(many.stdout)["results"]] == ["boxes"] * 4 + ["soda_cans"] * 4
    assert imported(many) == []
    # The run's images were removed from the stack's bucket afterwards.
    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION

    running = stack.find()
    s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    assert s3.list_objects_v2(Bucket=running.state.bucket, Prefix="runs/")["KeyCount"] == 0


@pytest.mark.slow  # waits for the idle stop
def test_invoke_local_leaves_a_warm_stack_that_stops_when_idle(own_cache):
    env = {"RCYC_KEEP_WARM": "1", "RCYC_STACK_IDLE_SECONDS": "8"}
    image = IMAGES / "boxes" / "boxes_1.jpg"
    first = rcyc("invoke-local", image, "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert "starting a warm local stack" in first.stderr and json.loads(first.stdout)["results"][0]["label"] == "boxes"
    running = stack.find()
    assert running is not None and running.state.config.idle_seconds == 8
    second = rcyc("invoke-local", image, "--json", env=env)
    assert "warm stack" in json.loads(second.stdout)["invocation"]["runtime"] and "starting a warm" not in second.stderr
    off = rcyc("invoke-local", image, "--json", "--no-stack", env=env)
    assert "warm stack" not in json.loads(off.stdout)["invocation"]["runtime"]
    pid = running.state.pid
    deadline = time.monotonic() + 60
    while stack.running(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not stack.running(pid) and stack.find() is None  # it stopped by itself


def test_local_up_with_no_options_reports_the_stack_invoke_local_left(tmp_path, monkeypatch, rie_path):
    """invoke-local (runtime auto) leaves a stack; `local up` with no options is the same function, so it
    reports that stack (the state holds the runtime that runs, never "auto"), not a conflict."""
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    monkeypatch.delenv("RCYC_RUNTIME", raising=False)
    try:
        first = rcyc("invoke-local", IMAGES / "boxes" / "boxes_1.jpg", "--json", env={"RCYC_KEEP_WARM": "1"})
        assert first.returncode == 0, first.stderr
        left = stack.find()
        assert left is not None and left.state.config.function.runtime in ("docker", "process")
        up = rcyc("local", "up", "--json")
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["pid"] == left.state.pid and status["runtime"] == left.state.runtime
        assert status["endpoint"] == left.endpoint_url and len(status["instances"]) == left.state.config.instances
    finally:
        stack.down()
