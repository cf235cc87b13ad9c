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

    def get_object(self, Bucket, Key):  # noqa: N803 - botocore's names
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
