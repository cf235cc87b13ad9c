"""Everything rcyc starts or creates is released by the next rcyc command of any kind, even when the process
that made it was killed with -9: its temporary files and folders, the sandboxes (emulator and runtime) and
the containers of an owner that is gone.

Temporary files and folders are made under ``<cache>/tmp`` with their owner's pid and start time in the
name; a container gets a marker file there under the same rule (so a command that is not a docker one
contacts the engine only when a dead owner's container may be left). ``sweep()`` runs before every command:
a listing of one folder, and the emulator reaper's ``sweep_orphans`` (the environments in ``/proc``),
which ``main`` passes in.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .paths import cache_dir

_NAME = re.compile(r"[a-z-]+?-(\d+)-(\d+)-")


def temp_root() -> Path:
    return cache_dir() / "tmp"


def _me() -> str:
    return f"{os.getpid()}-{start_time(os.getpid())}"


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat``): with the pid, its identity."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _alive(pid: int, started: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and fields[19] == started
    except (OSError, IndexError):
        return False


def temp_dir(kind: str) -> Path:
    """A new temporary folder owned by this process (removed by the next command if this one is killed)."""
    root = temp_root()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{_me()}-", dir=root))


def temp_file(kind: str, suffix: str = "") -> Path:
    """A new empty temporary file owned by this process (as temp_dir)."""
    root = temp_root()
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{kind}-{_me()}-", suffix=suffix, dir=root)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def container_marker(owner: str):
    """While a container of ``owner`` may exist: a marker naming this process, so that if it is killed the
    next command knows to ask the engine for the container."""
    root = temp_root()
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f"container-{_me()}-{re.sub(r'[^A-Za-z0-9-]', '', owner)[:80]}"
    marker.touch()
    try:
        yield marker
    finally:
        marker.unlink(missing_ok=True)


def sweep(sandboxes: Callable[[], int], containers: Callable[[object], int]) -> int:
    """Release what dead owners left; returns how many entries were removed. Never fails a command.
    ``sandboxes()`` stops the dead owners' sandboxes, ``containers(engine)`` removes their containers (asked
    only when a dead owner's container marker was found): the emulator's reaper, passed in by the caller."""
    removed, dead_containers = 0, False
    try:
        entries = list(os.scandir(temp_root()))
    except OSError:
        entries = []
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or _alive(int(match.group(1)), match.group(2)):
            continue
        if entry.name.startswith("container-"):
            dead_containers = True
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
    with contextlib.suppress(OSError):
        removed += sandboxes()
    if dead_containers:
        with contextlib.suppress(Exception):
            from . import image

            removed += containers(image.engine())
    return removed
