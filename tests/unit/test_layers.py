"""The layers of rcyc_cli, checked like behaviour: no import (at module level or inside a function) from a
lower layer up to a higher one, and lambda/rcyc_core (the function's code) imports nothing of rcyc_cli.
Imports within one layer are allowed (evaluate uses the local emulator to run a model)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Top to bottom: a package or module of rcyc_cli may import its own layer and the layers below it.
LAYERS = (
    ("entry",),  # the console script: it loads main under a Ctrl-C guard
    ("main",),
    ("commands",),
    ("checks",),
    ("render", "train", "classify"),
    ("evaluate", "local"),
    ("predict", "leftovers"),
    ("cloud",),
    ("dataset", "config", "outputs", "function_spec", "image", "model_source"),
    ("files", "exit_status", "defaults", "paths", "invocation"),
    ("quiet", "reporting"),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else node.module
            base = (base or "").rstrip(".")
            # "from rcyc_cli import image": the module named is rcyc_cli.image
            found += [(node.lineno, f"{base}.{a.name}" if base == "rcyc_cli" else base) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "rcyc_cli" and len(parts) > 1 else None


def upward_imports(root: Path) -> list[str]:
    arrows = []
    for path in sorted((root / "rcyc_cli").rglob("*.py")):
        me = _top(".".join(path.relative_to(root).with_suffix("").parts))
        if me in (None, "__init__"):
            continue
        for line, module in _imported(path, root):
            other = _top(module)
            if other in (None, me, "__version__"):
                continue
            where = f"{path.relative_to(root)}:{line}"
            for name in (me, other):
                if name not in LEVEL:
                    arrows.append(f"{where}: rcyc_cli.{name} has no layer (add it to LAYERS in {Path(__file__).name})")
            if me in LEVEL and other in LEVEL and LEVEL[other] < LEVEL[me]:
                arrows.append(f"{where}: {me} imports {module} from a higher layer")
    return arrows


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(ROOT) == []


def test_the_function_code_imports_nothing_of_the_cli():
    core = ROOT / "lambda"
    reaching = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in sorted(core.rglob("*.py"))
                for line, module in _imported(path, core) if module.split(".")[0] == "rcyc_cli"]
    assert reaching == []


@pytest.mark.parametrize("source, upward", [
    ("from ..train.container import build\n", True),  # inside cloud/, relative: up
    ("def f():\n    from rcyc_cli.commands import output\n", True),  # inside a function: still up
    ("from rcyc_cli import render\n", True),
    ("from .. import defaults\nfrom .aws import Aws\n", False),  # down, and within cloud
])
def test_the_check_sees_an_upward_import_however_it_is_written(tmp_path, source, upward):
    for package in ("rcyc_cli", "rcyc_cli/cloud"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "rcyc_cli" / "cloud" / "probe.py").write_text(source)
    assert bool(upward_imports(tmp_path)) is upward
