"""rcyc.toml (or the file RCYC_CONFIG names): option defaults for every command, plus tables of its own
(``[eval.labels]``). Flags > environment > this file > built-in defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from rcyc_core.errors import InputError

CONFIG_FILE = "rcyc.toml"


def config_path() -> Path:
    return Path(os.environ.get("RCYC_CONFIG", CONFIG_FILE))


CONFIG_LIMIT = 1 << 20


def read_config() -> dict:
    """The parsed file, or {} when there is none. A file RCYC_CONFIG names must be there, and either must be
    a regular file (a folder, a device or a FIFO is refused unread)."""
    from .files import read_regular

    path = config_path()
    if not os.environ.get("RCYC_CONFIG") and not os.path.lexists(path):
        return {}
    try:
        text = read_regular(path, CONFIG_LIMIT, "config file").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 (byte {exc.start})", hint="Save it as UTF-8, or point RCYC_CONFIG elsewhere.") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="Fix its permissions, or point RCYC_CONFIG elsewhere.") from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}", hint="Fix the file, or point RCYC_CONFIG elsewhere.") from None


def eval_label_mapping() -> dict[str, str] | None:
    """``[eval.labels]``: folder name -> label, for labelled folders named otherwise."""
    table = read_config().get("eval", {})
    labels = table.get("labels") if isinstance(table, dict) else None
    if labels is not None and not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
        raise InputError(f"[eval.labels] in {config_path()} must map folder names to labels",
                         hint='e.g. [eval.labels]\ncans = "soda_cans"')
    return labels


def env_seconds(name: str, default: float, minimum: float = 1.0, maximum: float = 30 * 86400) -> float:
    """A duration in seconds from the environment variable ``name`` (``default`` when unset or empty): a
    finite number in [minimum, maximum], else InputError naming the variable (``-5`` or ``abc`` is not
    "stop at once" nor a traceback)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:  # NaN fails both comparisons
        raise InputError(f"{name}={text[:40]!r} is not a number of seconds between {minimum:.0f} and {maximum:.0f}",
                         hint=f"Unset it (default {default:g}) or give e.g. {name}=600.")
    return value
