"""An emulator named by a relative path (``--rie ./aws-lambda-rie``, ``RCYC_RIE=bin/rie``) is the file in the
folder the command was run from: the emulator runs from its sandbox's own folder, where a relative path once
named nothing ("cannot run the emulator: No such file or directory", exit 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rcyc_cli.function_spec import FunctionSpec
from tests.conftest import IMAGES, ROOT

pytestmark = pytest.mark.e2e


def test_a_spec_keeps_its_emulator_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert FunctionSpec(rie="bin/rie").rie == str(tmp_path / "bin" / "rie")
    assert FunctionSpec().rie is None


@pytest.mark.parametrize("how", ["--rie", "RCYC_RIE"])
def test_a_relative_emulator_path_runs(tmp_path, rie_path, how):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "rie").symlink_to(rie_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]), "RCYC_RUNTIME": "process"}
    args = ["invoke-local", str(IMAGES / "boxes" / "boxes_0.jpg"), "--no-stack", "--json"]
    if how == "--rie":
        args += ["--rie", "bin/rie"]
    else:
        env["RCYC_RIE"] = "bin/rie"
    done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["label"] == "boxes"
