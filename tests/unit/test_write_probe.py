"""Checking that the cache is writable leaves nothing behind, whenever a stop lands.

``local/.write-<pid>`` was left in the cache when SIGTERM landed between the probe's write and its unlink
(seen on a first invoke-local stopped as it started the warm stack). The probe now has no name where the
file system allows (O_TMPFILE), and elsewhere is removed in a ``finally``."""

from __future__ import annotations

import os

import pytest

from rcyc_cli import model_source, paths
from rcyc_cli.local.stack import ownership


def _interrupt_once(monkeypatch, name: str):
    real = getattr(os, name)
    calls = []

    def interrupted(*args, **kwargs):
        if not calls:
            calls.append(args)
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(os, name, interrupted)


def _left(directory) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".write")] if directory.exists() else []


@pytest.mark.parametrize("check", ["state dir", "models cache"])
@pytest.mark.parametrize("named,where", [(False, "unlink"), (False, "close"), (True, "close")],
                         ids=["unnamed-stop-before-unlink", "unnamed-stop-at-close", "named-stop-at-close"])
def test_a_stop_during_the_write_check_leaves_no_probe(monkeypatch, tmp_path, check, named, where):
    """(A named probe whose own unlink is interrupted cannot be removed: not a case any code can fix.)"""
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path))
    if named:
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    directory = ownership.state_dir() if check == "state dir" else paths.cache_dir() / "models"
    directory.mkdir(parents=True)
    _interrupt_once(monkeypatch, where)
    try:
        ownership.ensure_state_dir() if check == "state dir" else model_source.writable_cache(directory)
    except KeyboardInterrupt:
        pass
    assert _left(directory) == []


def test_an_unwritable_place_is_still_refused(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        paths.try_write(tmp_path / "file")
