"""Junk where the stack keeps its own files (``local/stack.log``, ``state.json``, ``lock``): a FIFO, a folder,
a link out of the cache. The stack starts all the same and writes only regular files in its own folder: a
FIFO log once hung invoke-local for good, a folder there was "Is a directory ... Check the path given"
(a path the user never gave), and a folder at state.json left a state.<pid>.part file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rcyc_cli.local.stack import client as stack
from tests.conftest import IMAGES, ROOT

pytestmark = pytest.mark.e2e


def junk(path, kind: str, outside) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        (path / "inside").mkdir(parents=True)
    else:
        path.symlink_to(outside)


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
@pytest.mark.parametrize("name", ["stack.log", "state.json", "lock"])
def test_junk_in_the_stacks_folder_is_replaced_never_followed_nor_waited_on(tmp_path, monkeypatch, rie_path, name, kind):
    outside = tmp_path / "someone-elses.txt"
    outside.write_text("theirs")
    junk(stack.ensure_state_dir() / name, kind, outside)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]), "RCYC_KEEP_WARM": "1",
           "RCYC_RUNTIME": "process", "RCYC_RIE": str(rie_path)}
    try:
        done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "invoke-local", str(IMAGES / "boxes" / "boxes_0.jpg"),
                               "--json"], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["invocation"]["runtime"] == "process (warm stack)"
    finally:
        stack.down()
    assert outside.read_text() == "theirs"
    assert not list(stack.state_dir().glob("*.part"))
