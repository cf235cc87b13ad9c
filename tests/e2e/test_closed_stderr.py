"""A reader of rcyc's diagnostics that goes away (``rcyc ... 2>&1 | head``, a closed stderr): progress, notices,
warnings and the error line go nowhere from then on, and the command ends with its own exit status, never
click's or rich's exit 1 for a broken pipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.e2e


def rcyc_with_closed_diagnostics(*args: str, both: bool = False) -> int:
    """rcyc's exit status with stderr (and, with ``both``, stdout too: ``2>&1 | head``) a pipe whose read end is
    closed before rcyc writes a byte."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", *args], stderr=write,
                              stdout=write if both else subprocess.DEVNULL, env=env, cwd=ROOT, timeout=300, check=False)
    finally:
        os.close(write)
    return done.returncode


@pytest.mark.parametrize("both", [False, True], ids=["stderr", "2>&1"])
def test_an_error_line_nobody_reads_keeps_the_errors_status(both, tmp_path):
    assert rcyc_with_closed_diagnostics("invoke-local", str(tmp_path / "missing.jpg"), both=both) == 3
    assert rcyc_with_closed_diagnostics("local", "status", both=both) == 4  # none running: said on stderr, exit 4


def test_a_deprecation_warning_nobody_reads_does_not_end_the_command(tmp_path):
    # click.echo(err=True) writes the warning: its broken pipe once ended rcyc with exit 1 before any work
    status = rcyc_with_closed_diagnostics("invoke-local", str(tmp_path / "missing.jpg"), "--endpoint-url",
                                          "http://127.0.0.1:9")
    assert status == 3


def test_progress_nobody_reads_does_not_cost_the_results():
    assert rcyc_with_closed_diagnostics("eval", str(FIXTURES / "eval"), both=True) == 0
