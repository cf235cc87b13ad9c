"""Reading what the user names on the command line: regular files only, bounded, with names S3 can carry.

A device (``/dev/zero``), a FIFO or a socket is refused before a byte is read: opened non-blocking (a FIFO
with no writer would otherwise hang the open) and checked with ``fstat`` on the open descriptor, so a
path swapped between the check and the read cannot slip through.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path
from typing import Iterable

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
        _check_regular(path, os.fstat(fd), limit, what)
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


def regular_size(path: Path, limit: int | None = None, what: str = "file") -> int:
    """The size of a regular file of at most ``limit`` bytes, checked as ``read_regular`` checks it (the same
    refusals, the same messages) without reading a byte: a run checks every input before it starts and
    reads each only when it sends it, so its memory does not grow with the number of files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{_shown(path)} does not exist", hint="Check the path.") from None
    except OSError as exc:
        raise InputError(f"cannot read the {what} {_shown(path)}: {exc.strerror}", hint="Check the file's permissions.") from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    _check_regular(path, info, limit, what)
    return info.st_size


def _check_regular(path: Path, info: os.stat_result, limit: int | None, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{_shown(path)} is not a regular file ({kind_of(info.st_mode)})",
                         hint=f"Give a regular {what}: devices, FIFOs and sockets are never read.")
    if limit is not None and info.st_size > limit:
        raise InputError(f"the {what} {_shown(path)} is {info.st_size:,} bytes, more than the limit of {limit:,}",
                         hint="Split it into smaller ones.")


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


def shown(name: object) -> str:
    """The one escape for a name (file, key, folder) in human output: on one printable line, control
    characters (terminal escape sequences, newlines) and undecodable bytes written as Python escapes."""
    text = str(name)
    return ascii(text)[1:-1] if not text.isprintable() or _undecodable(text) else text


_shown = shown


def unanswered(exc: BaseException) -> str:
    """Why a request got no answer, for one error line: urllib's reason (refused, timed out) or, for an answer
    cut short or not HTTP (http.client's errors carry no reason), the error's type and text."""
    return str(getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"[:200])


def check_text(value: str, what: str) -> str:
    """``value`` (a key, an address) if it is printable UTF-8, else InputError naming ``what``."""
    if shown(value) != value:
        raise InputError(f"{what} {shown(value)} is not printable UTF-8 (a control character or undecodable bytes)",
                         hint=f"Give {what} as plain text.")
    return value


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


# What rcyc takes for an image file or object, by name (any case): invoke-local, upload-image, eval, train, classify.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


def expand_images(arguments: list[Path]) -> list[Path]:
    """Files as given; directories and glob patterns expand to the image files in them (sorted). Only
    regular files: a device, a FIFO or a socket is refused, named or found."""
    found: list[Path] = []
    for argument in arguments:
        text = str(argument)
        if not text.strip():
            raise InputError("an empty path was given as an image", hint="Give image files, a directory, or a quoted pattern.")
        if argument.is_dir():
            found += sorted(p for p in argument.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and is_regular(p))
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if is_regular(p))
            if not matches:
                raise InputError(f"no files match {text}", hint="Check the pattern (quote it so the shell does not expand it).")
            found += matches
        elif is_regular(argument):
            found.append(argument)
        elif argument.exists():
            read_regular(argument, what="image")  # raises: says what it is instead (a device, a FIFO, ...)
        else:
            raise InputError(f"{shown(text)} does not exist or is not a file", hint="Check the path.")
    for path in found:
        check_name(path)
    return found


def keyed_by_name(paths: Iterable[Path], prefix: str) -> list[tuple[Path, str]]:
    """(path, ``prefix`` + its file name) of each path; two different files of one name would be one key:
    refused before anything is written."""
    pairs, seen = [], {}
    for path in paths:
        key = prefix + path.name
        if key in seen and seen[key] != path.resolve():
            raise InputError(f"{seen[key]} and {path} would both be uploaded as {key}", hint="Rename one of them.")
        seen[key] = path.resolve()
        pairs.append((path, key))
    return pairs
