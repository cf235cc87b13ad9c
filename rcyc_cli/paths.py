"""Where rcyc finds its own files and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

import rcyc_core

# The function's directory (lambda/: app.py beside the rcyc_core package) is the emulator's task root.
FUNCTION_DIR = Path(rcyc_core.__file__).resolve().parent.parent
REPO_ROOT = FUNCTION_DIR.parent
FIXTURES = REPO_ROOT / "fixtures"
DEFAULT_MODEL = FIXTURES / "models" / "fixture-psu"
DEFAULT_IMAGE = FIXTURES / "images" / "soda_cans" / "soda_cans_0.jpg"


def cache_dir() -> Path:
    base = os.environ.get("RCYC_CACHE_HOME") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rcyc"
