"""Where rcyc finds its own files and keeps its caches."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import rcyc_core

# The function's directory (lambda/: app.py beside the rcyc_core package) is the emulator's task root.
FUNCTION_DIR = Path(rcyc_core.__file__).resolve().parent.parent
REPO_ROOT = FUNCTION_DIR.parent
FIXTURES = REPO_ROOT / "fixtures"
DEFAULT_MODEL = FIXTURES / "models" / "fixture-psu"
DEFAULT_IMAGE = FIXTURES / "images" / "soda_cans" / "soda_cans_0.jpg"


def require_checkout() -> None:
    """The function's files (app.py, the Dockerfile, fixtures) come from the rcyc checkout; an install
    without them (pip install of a wheel) cannot run or build the function."""
    if not (FUNCTION_DIR / "app.py").is_file() or not (REPO_ROOT / "Dockerfile").is_file():
        from rcyc_core.errors import PrerequisiteError

        raise PrerequisiteError(f"the function's files are not beside rcyc_core ({FUNCTION_DIR})",
                                hint="Install rcyc from its checkout with `make setup` (an editable install).")


def cache_dir() -> Path:
    base = os.environ.get("RCYC_CACHE_HOME") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rcyc"


def try_write(directory: Path) -> None:
    """Raise OSError unless a file can be made in ``directory`` (also as root: a read-only mount refuses).
    The probe has no name (O_TMPFILE) where the file system allows, so a stop at any instant leaves nothing
    behind; elsewhere a named one is removed whatever happens."""
    flags = getattr(os, "O_TMPFILE", 0)
    if flags:
        try:
            os.close(os.open(directory, flags | os.O_WRONLY, 0o600))
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR):
                raise
    probe = directory / f".write-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
