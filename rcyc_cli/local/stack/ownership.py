"""Where the warm stack of this cache lives and who owns it: its folder, its state file, its lock.

The stack process holds ``local/stack.lock`` (``flock``) for its whole life, with its pid and owner token
written in it (``claim``); the kernel drops the lock when the process dies, even by ``kill -9``, so a held
lock is a living stack however slow it is (``holder``). The state file says where it answers and is read as
a bounded regular file holding a JSON object with the stack's fields (``read_state``); ``locked`` serialises
``up`` and ``down``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
from pathlib import Path

from rcyc_core.errors import FunctionError, InputError, PrerequisiteError

from ...paths import cache_dir, try_write


def state_dir() -> Path:
    return cache_dir() / "local"



def state_file() -> Path:
    return state_dir() / "state.json"


def lock_file() -> Path:
    return state_dir() / "stack.lock"


class StackNotAnswering(FunctionError):
    """A stack of this cache is alive (it holds its lock) but does not answer: busy is not dead."""

    kind = "StackNotAnswering"


def holder() -> dict | None:
    """The living stack of this cache as it wrote itself into its lock, ``{"pid", "owner"}`` (``None``
    values while it is still writing them), or None when no process holds the lock."""
    try:
        fd = os.open(lock_file(), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                info = {}
            info = info if isinstance(info, dict) else {}
            return {"pid": info.get("pid") if type(info.get("pid")) is int else None,
                    "owner": info.get("owner") if isinstance(info.get("owner"), str) else None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def claim(owner: str, wait: float = 5.0) -> int:
    """Take the stack's lock for the life of this process (the stack's own first step) and write its pid
    and owner token in it; returns the descriptor, which must stay open. Another living stack of this
    cache is a PrerequisiteError (readers hold the lock only for an instant: that is waited out)."""
    path = own_file(ensure_state_dir() / "stack.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise PrerequisiteError("another local stack of this cache is running (it holds the stack's lock)",
                                        hint="rcyc local status; rcyc local down stops it") from None
            time.sleep(0.02)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "owner": owner}).encode(), 0)
    return fd


def own_file(path: Path) -> Path:
    """``path``, a file of rcyc's own folder, with whatever junk stood there removed (a FIFO would hang the
    open, a folder refuse it, a link send the write elsewhere): only a regular file is written in place."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return path


def ensure_state_dir() -> Path:
    """The stack's folder in the cache, created; an unwritable cache is a clear error, not a traceback."""
    directory = state_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try_write(directory)
    except OSError as exc:
        raise PrerequisiteError(f"the rcyc cache {directory} is not writable: {exc.strerror}", kind="CacheUnwritable",
                                hint="Point RCYC_CACHE_HOME at a writable folder.") from None
    return directory


@contextlib.contextmanager
def locked():
    """The stack's lock (``flock`` on ``local/lock``): one ``up``/``down`` at a time, so two concurrent
    ``local up`` give one stack. Released by the kernel if its holder dies."""
    fd = os.open(own_file(ensure_state_dir() / "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)



def being_started() -> bool:
    """Whether a command holds ``locked`` now (an ``up`` starting the stack, or a ``down``), without waiting."""
    fd = os.open(own_file(ensure_state_dir() / "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


STATE_LIMIT = 1 << 20


def read_state() -> dict | None:
    """The state file when it is one a stack wrote: a regular file (a FIFO there would hang a plain read)
    of at most 1 MB holding a JSON object with the stack's fields. Anything else (missing, garbage, ``[]``)
    is None."""
    from ...files import read_regular

    try:
        state = json.loads(read_regular(state_file(), STATE_LIMIT, "state file"))
    except (InputError, ValueError, RecursionError):
        return None
    fields = {"pid": int, "endpoint": str, "owner": str, "config": dict}
    if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in fields.items()):
        return None
    return state
