"""First `invoke-local` calls while another one is starting the warm stack: the stack already holds its lock
but has not said where it answers yet. They wait for it (its starter holds the stack's lock until it
answers) and use it: a stack that is starting is busy, not broken, and none of them fails with "it is
starting, or stuck"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rcyc_cli.local.stack import client as stack
from tests.conftest import IMAGES, ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def keep_warm(monkeypatch, rie_path):
    monkeypatch.setenv("RCYC_KEEP_WARM", "1")
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    try:
        yield
    finally:
        stack.down()


def invoke_local() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
    image = IMAGES / "soda_cans" / "soda_cans_0.jpg"
    return subprocess.Popen([sys.executable, "-m", "rcyc_cli.main", "invoke-local", str(image), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_calls_made_while_the_stack_starts_wait_for_it_and_use_it(keep_warm):
    calls = [invoke_local()]
    deadline = time.monotonic() + 60
    while stack.holder() is None or stack.typed_state(stack.read_state()) is not None:  # locked, not yet ready
        assert time.monotonic() < deadline and calls[0].poll() is None, "the stack never started"
        time.sleep(0.01)
    calls += [invoke_local(), invoke_local()]
    answers = [call.communicate(timeout=300) for call in calls]
    for call, (out, err) in zip(calls, answers):
        assert call.returncode == 0, err
        assert json.loads(out)["invocation"]["runtime"] == "process (warm stack)"
    assert len({json.loads(out)["invocation"]["s3_endpoint"] for out, _err in answers}) == 1  # one stack
