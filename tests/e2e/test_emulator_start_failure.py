"""An emulator that dies while starting (a broken binary, a port it cannot bind) is one error line with a hint,
after what it said: the bare "the emulator exited while starting" once came with neither."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import IMAGES, ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("stack", [["--no-stack"], []], ids=["one-shot", "starting-a-stack"])
def test_an_emulator_that_dies_while_starting_says_why(tmp_path, stack):
    rie = tmp_path / "rie"
    rie.write_text("#!/bin/sh\necho 'rie: listen tcp: bind: address already in use' >&2\nexit 3\n")
    rie.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]), "RCYC_RUNTIME": "process",
           "RCYC_KEEP_WARM": "1"}
    done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "invoke-local", str(IMAGES / "boxes" / "boxes_0.jpg"),
                           "--rie", str(rie), *stack], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 6, done.stderr
    lines = done.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[errors[0] + 1].startswith("hint: "), done.stderr
    assert "address already in use" in done.stderr  # what the emulator said: the why
