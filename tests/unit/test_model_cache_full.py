"""A model file the function cannot write into its cache (a full /tmp: Lambda's is 512 MB by default) is the
cache's failure, "cannot write ... No space left on device" (CacheUnwritable), and the part file is gone:
it was told as "cannot reach S3 for the model file: OSError" (S3Unreachable), which sends people after the
network. A failed read is still S3's."""

from __future__ import annotations

import errno
import hashlib
import io
import os

import pytest
from rcyc_core import model_store
from rcyc_core.config import Config
from rcyc_core.errors import RcycError

DATA = b"model bytes" * 1000


class FakeS3:
    def __init__(self, fail_read: bool = False):
        self.fail_read = fail_read

    def get_object(self, Bucket, Key):
        if self.fail_read:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return {"Body": io.BytesIO(DATA)}


class FullDisk(io.RawIOBase):
    def writable(self):
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_cache_is_the_caches_failure_not_s3s(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    def full(fd, mode="r", *args, **kwargs):
        os.close(fd)
        return FullDisk() if "w" in mode else real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(model_store.os, "fdopen", full)
    store = model_store.ModelStore(FakeS3(), Config(cache_dir=tmp_path))
    with pytest.raises(RcycError) as caught:
        store._fetch_file("b", "models/m/1/model.tflite", hashlib.sha256(DATA).hexdigest(), "tflite")
    assert caught.value.kind == "CacheUnwritable" and "No space left" in caught.value.message
    assert not list((tmp_path / "models").iterdir())  # no part file left


def test_a_failed_read_is_still_s3s(tmp_path):
    store = model_store.ModelStore(FakeS3(fail_read=True), Config(cache_dir=tmp_path))
    with pytest.raises(RcycError) as caught:
        store._fetch_file("b", "models/m/1/model.tflite", hashlib.sha256(DATA).hexdigest(), "tflite")
    assert caught.value.kind == "S3Unreachable"
    assert not list((tmp_path / "models").iterdir())


def test_a_good_download_is_cached(tmp_path):
    store = model_store.ModelStore(FakeS3(), Config(cache_dir=tmp_path))
    path = store._fetch_file("b", "models/m/1/model.tflite", hashlib.sha256(DATA).hexdigest(), "tflite")
    assert path.read_bytes() == DATA


@pytest.mark.parametrize("logs, above", [([], False), (["START RequestId: x", "Runtime exited"], True)])
def test_a_hint_points_at_the_log_above_only_when_there_is_one(logs, above):
    # A runtime that died on a full disk left no log: "The function's log is above." pointed at nothing.
    from rcyc_cli.invocation import LOG_ABOVE
    from rcyc_cli.local.emulator.sandbox import NO_LOG, Sandbox

    sandbox = Sandbox.__new__(Sandbox)
    sandbox._new_log_lines = lambda wait_for_report: list(logs)
    failure = sandbox._failure("the emulator did not answer: Bad Gateway", "EmulatorError")
    assert failure.logs == logs and failure.hint == (LOG_ABOVE if above else NO_LOG)
