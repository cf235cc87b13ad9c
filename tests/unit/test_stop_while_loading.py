"""A Ctrl-C while the ``rcyc`` command is still loading (its first tenth of a second: click, the commands) ends
it as any Ctrl-C does: one error line, exit 130, no KeyboardInterrupt traceback from inside an import.

The loading is held open on purpose (an import hook that waits in ``rcyc_cli.main``'s import), so the signal
lands there every time, not by timing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import tomllib

import pytest

from tests.conftest import ROOT, stops_as_in_a_terminal

HOLD_THE_LOADING = """
import sys, time

class Slow:
    def find_spec(self, name, path=None, target=None):
        if name == "rcyc_cli.main":
            print("loading", flush=True)
            time.sleep(60)  # the signal arrives here, inside the import
        return None

sys.meta_path.insert(0, Slow())
from rcyc_cli.entry import main
main()
"""


def test_the_console_script_is_the_guarded_entry():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"rcyc": "rcyc_cli.entry:main"}


@pytest.mark.parametrize("presses", [1, 3])
def test_ctrl_c_while_loading_is_one_line_and_exit_130(presses):
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOADING, "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               preexec_fn=stops_as_in_a_terminal)
    try:
        assert process.stdout.readline().strip() == "loading"
        for _ in range(presses):  # a second Ctrl-C at once is the same stop, not a death by SIGINT
            process.send_signal(signal.SIGINT)
            time.sleep(0.001)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines() == ["error: interrupted while rcyc was starting; it had started nothing yet"]
