"""Reading what the user names on the command line: regular files only, bounded, with names S3 can carry.

A device (``/dev/zero``), a FIFO or a socket is refused before a byte is read: opened non-blocking (a FIFO
with no writer would otherwise hang the open) and checked with ``fstat`` on the open descriptor, so a
path swapped between the check and the read cannot slip through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rcyc_core.errors import InputError


def read_regular(path: Path, limit: int | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file, at most ``limit`` of them (InputError beyond, before reading)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{_shown(path)} does not exist", hint="Check the path.") from None
    except OSError as exc:
        raise InputError(f"cannot read the {what} {_shown(path)}: {exc.strerror}",
                         hint="Check the file's permissions.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{_shown(path)} is not a regular file ({_kind(info.st_mode)})",
                             hint=f"Give a regular {what}: devices, FIFOs and sockets are never read.")
        if limit is not None and info.st_size > limit:
            raise InputError(f"the {what} {_shown(path)} is {info.st_size:,} bytes, more than the limit of {limit:,}",
                             hint="Split it into smaller ones.")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:  # it grew while being read
                raise InputError(f"the {what} {_shown(path)} is more than the limit of {limit:,} bytes",
                                 hint="Split it into smaller ones.")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read the {what} {_shown(path)}: {exc.strerror}", hint="Check the file.") from None
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def check_name(path: Path) -> None:
    """A file name that can become an S3 key and be shown on one line: valid UTF-8, no control characters."""
    name = path.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the file name {_shown(path)} is not valid UTF-8", hint="Rename the file.") from None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InputError(f"the file name {_shown(path)} holds a control character (a newline, a tab, ...)",
                         hint="Rename the file.")


def _shown(path: Path) -> str:
    """The path on one printable line (escapes for control characters and undecodable bytes)."""
    return ascii(str(path))[1:-1] if not str(path).isprintable() or _undecodable(path) else str(path)


def _undecodable(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"
