"""Writing only where the user asked: the one check every output option goes through (eval --report,
train --report, classify --output, train --out), and the one atomic writer.

A target is accepted when it is a regular file, or missing with an existing writable directory above it
(its mount flags are read too: ``os.access`` says yes to root on a read-only mount). A device, a FIFO, a socket, a directory, a symbolic link and a ``/proc`` or
``/sys`` file are refused before any work, exit 3. The bytes go to a temporary file beside the target,
renamed over it only when complete, so a reader never sees half a file and nothing but the target changes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from rcyc_core.errors import InputError

from .files import kind_of, shown

_PSEUDO = ("/proc", "/sys", "/dev")


def _lstat(path: Path, option: str, hint: str) -> os.stat_result | None:
    """What is at ``path`` itself (a link is not followed), None when nothing is; any other failure is bad input."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{option} {shown(path)}: {exc.strerror}", hint=hint) from None


def check_output_file(path: Path, option: str) -> Path:
    """``path`` if a file may be written there, else InputError (exit 3) naming ``option`` and why."""
    path = Path(path)
    text = str(path)
    if not text.strip():
        raise InputError(f"{option} is empty", hint=f"Give {option} a file name.")
    hint = f"Give {option} a regular file, or a new file name in an existing writable folder."
    if shown(path.name) != path.name:  # a newline, an escape sequence or undecodable bytes in the name
        raise InputError(f"{option} {shown(path)}: the file name is not printable UTF-8", hint="Choose a plain file name.")
    info = _lstat(path, option, hint)
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise InputError(f"{option} {shown(path)} is a symbolic link; rcyc never writes through one", hint=hint)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise InputError(f"{option} {shown(path)} is {kind_of(info.st_mode)}, not a regular file", hint=hint)
    real = os.path.realpath(path)
    for top in _PSEUDO:
        if real == top or real.startswith(top + "/"):
            raise InputError(f"{option} {shown(path)} is under {top}, where rcyc never writes", hint=hint)
    _probe(path.parent if str(path.parent) else Path("."), option, path, hint)
    return path


def check_output_dir(path: Path, option: str) -> Path:
    """``path`` if a new directory may be made there (missing, or an empty directory), else InputError."""
    path = Path(path)
    if not str(path).strip():
        raise InputError(f"{option} is empty", hint=f"Give {option} a new folder name.")
    hint = f"Give {option} a new folder name (or an empty folder) in an existing writable folder."
    info = _lstat(path, option, hint)
    if info is not None:
        if not stat.S_ISDIR(info.st_mode):
            raise InputError(f"{option} {shown(path)} is {kind_of(info.st_mode)}, not a folder", hint=hint)
        try:
            if any(os.scandir(path)):
                raise InputError(f"{option} {shown(path)} is not empty", hint=hint)
        except OSError as exc:
            raise InputError(f"{option} {shown(path)}: {exc.strerror}", hint=hint) from None
    _probe(path.parent if str(path.parent) else Path("."), option, path, hint)
    return path


def _probe(directory: Path, option: str, path: Path, hint: str) -> None:
    """The folder a file would be made in: there, a folder, writable (also for root: a read-only mount is
    seen in its flags), with room. Nothing is written to find out."""
    try:
        info = os.stat(directory)
        space = os.statvfs(directory)
    except FileNotFoundError:
        raise InputError(f"{option} {shown(path)}: the folder {shown(directory)} does not exist", hint=hint) from None
    except OSError as exc:
        raise InputError(f"{option} {shown(path)}: {shown(directory)}: {exc.strerror}", hint=hint) from None
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(f"{option} {shown(path)}: {shown(directory)} is not a folder", hint=hint)
    if space.f_flag & os.ST_RDONLY or not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{option} {shown(path)}: the folder {shown(directory)} is not writable", hint=hint)
    if space.f_bavail == 0:
        raise InputError(f"{option} {shown(path)}: no space left in {shown(directory)}",
                         hint="Free some space or choose another place.")


@contextlib.contextmanager
def atomic_file(path: Path, option: str, mode: str = "w", **open_args):
    """An open file beside ``path`` (checked again here), renamed over it when the block completes; removed
    when the block raises. A failed write (a full disk) is an InputError naming the option, exit 3."""
    path = check_output_file(path, option)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(handle, mode, **open_args) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        _remove(temporary)
        raise InputError(f"could not write {option} {shown(path)}: {exc.strerror}",
                         hint="Free some space or choose another place.") from None
    except BaseException:
        _remove(temporary)
        raise


def write_file(path: Path, data: str | bytes, option: str) -> Path:
    with atomic_file(path, option, "wb" if isinstance(data, bytes) else "w",
                     **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as out:
        out.write(data)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
