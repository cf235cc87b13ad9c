"""The shape of the code, checked like behaviour: no function over cyclomatic complexity 15 (ruff's C901, the
limit in pyproject.toml) and no module over 400 lines, in rcyc_cli/ and lambda/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, need

CODE = ("rcyc_cli", "lambda")
MAX_LINES = 400


def ruff() -> list[str]:
    if (here := Path(sys.executable).with_name("ruff")).exists():
        return [str(here)]
    found = shutil.which("ruff")
    need(found is not None, "ruff (the test extra: pip install 'rcyc[test]')")
    return [found]


def test_no_function_is_over_the_complexity_limit():
    result = subprocess.run([*ruff(), "check", "--select", "C901", "--output-format", "concise", *CODE],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(ROOT)): n for top in CODE for path in sorted((ROOT / top).rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
