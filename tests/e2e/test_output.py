"""The one output path, through the real command line: a reader that closes stdout early (``rcyc eval ... |
head``) costs neither a traceback nor exit 1; the command's own exit status stands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.e2e


def rcyc_into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run rcyc with its stdout a pipe nobody reads: the read end is closed before rcyc writes a byte."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
    process = subprocess.Popen([sys.executable, "-m", "rcyc_cli.main", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=ROOT)
    process.stdout.close()
    try:
        stderr = process.communicate(timeout=300)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, None, stderr.decode(errors="replace"))


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["people", "json"])
def test_eval_into_a_closed_pipe_exits_with_its_own_status(json_flag):
    result = rcyc_into_closed_pipe("eval", str(FIXTURES / "eval"), *json_flag)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


def test_a_failed_gate_keeps_exit_9_when_the_reader_went_away():
    result = rcyc_into_closed_pipe("eval", str(FIXTURES / "eval"), "--min-accuracy", "1.0", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 9, result.stderr
