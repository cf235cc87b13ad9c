"""The stack starts its embedded S3 and its instances at once (issue 23): the instances get S3's address
before moto is loaded, a request they send meanwhile is answered once the model is in S3 (never before),
and a failure on either side stops the other. The launcher is a stand-in here (unit level); the real
instances are in tests/e2e/test_local_stack.py."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY
from rcyc_cli.local.emulator import s3 as s3_module
from rcyc_cli.local.stack import server
from rcyc_cli.local.stack.client import StackConfig, _compiled_once
from rcyc_cli.model_source import resolve_model
from rcyc_cli.reporting import SILENT
from rcyc_core.errors import InputError


class Pool:
    def __init__(self):
        self.stopped = False

    def stop(self):
        self.stopped = True


class Launcher:
    """Reads the model pointer through the address it is given, as an instance's warm-up does."""

    def __init__(self, events: list, fail: bool = False):
        self.events, self.fail, self.pool = events, fail, Pool()
        self.started = threading.Event()

    def start(self, endpoint_url, bucket, instances, **_options):
        self.events.append("instances started")
        self.started.set()
        if self.fail:
            raise RuntimeError("the emulator exited while starting")
        s3 = s3_client(endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        pointer = json.loads(s3.get_object(Bucket=bucket, Key=POINTER_KEY)["Body"].read())
        self.events.append(("pointer read", pointer["sha256"]))
        return self.pool


@pytest.fixture
def recorded(monkeypatch):
    """The order of what happens: the instances starting, S3 beginning to serve, the pointer read."""
    events: list = []
    original = s3_module.EmbeddedS3.start

    def start(self):
        events.append("S3 serving")
        return original(self)

    monkeypatch.setattr(s3_module.EmbeddedS3, "start", start)
    return events


def test_instances_start_before_s3_serves_and_their_reads_wait_for_the_model(recorded, monkeypatch):
    manifest, model_dir = resolve_model(None)
    launcher = Launcher(recorded)
    original_seed = s3_module.EmbeddedS3.seed_model

    def seed(self, *args):  # moto may be imported already (fast): S3 waits here until the instances started
        if not launcher.started.wait(30):
            raise AssertionError("S3 was made ready before the instances were started")
        original_seed(self, *args)

    monkeypatch.setattr(s3_module.EmbeddedS3, "seed_model", seed)
    s3, pool = server._start_together(launcher, StackConfig(instances=2), manifest, model_dir, "owner", SILENT)
    try:
        assert pool is launcher.pool and not pool.stopped
        assert recorded == ["instances started", "S3 serving", ("pointer read", manifest.sha256)]
    finally:
        s3.stop()


def test_a_failed_s3_stops_the_instances_and_is_raised(recorded, monkeypatch):
    manifest, model_dir = resolve_model(None)

    def broken(self, bucket, *args):
        raise InputError("the model cannot be seeded")

    monkeypatch.setattr(s3_module.EmbeddedS3, "seed_model", broken)
    launcher = Launcher(recorded)
    monkeypatch.setattr(launcher, "start", lambda *a, **k: recorded.append("instances started") or launcher.pool)
    with pytest.raises(InputError, match="cannot be seeded"):
        server._start_together(launcher, StackConfig(instances=2), manifest, model_dir, "owner", SILENT)
    assert launcher.pool.stopped
    assert "S3 serving" not in recorded


def test_failed_instances_stop_s3_and_release_its_port(recorded, monkeypatch):
    manifest, model_dir = resolve_model(None)
    made = []
    original = s3_module.EmbeddedS3.__init__

    def init(self, listener=None):
        made.append(listener.getsockname()[1])
        original(self, listener)

    monkeypatch.setattr(s3_module.EmbeddedS3, "__init__", init)
    with pytest.raises(RuntimeError, match="exited while starting"):
        server._start_together(Launcher(recorded, fail=True), StackConfig(instances=2), manifest, model_dir, "owner", SILENT)
    with socket.socket() as probe:  # nothing listens on S3's port any more
        assert probe.connect_ex(("127.0.0.1", made[0])) != 0


def test_a_bad_bucket_name_fails_before_anything_starts(recorded):
    manifest, model_dir = resolve_model(None)
    with pytest.raises(InputError):
        server._start_together(Launcher(recorded), StackConfig(bucket="Not_A_Bucket"), manifest, model_dir, "owner", SILENT)
    assert recorded == []


def test_the_stack_keeps_its_bytecode_in_rcyc_cache_where_the_caller_forbids_it_beside_the_sources():
    forbidden = _compiled_once({"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"})
    assert "PYTHONDONTWRITEBYTECODE" not in forbidden and forbidden["PYTHONPYCACHEPREFIX"].endswith("bytecode")
    assert forbidden["PATH"] == "/bin"
    assert _compiled_once({"PATH": "/bin"}) == {"PATH": "/bin"}  # allowed: Python's own __pycache__, unchanged
    own = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/mine"}
    assert _compiled_once(own) == own  # a prefix of the caller's own is the caller's choice


def test_a_stack_that_fails_to_start_passes_on_its_errors_hint(tmp_path):
    """`local up --bucket BAD` failed inside the stack process: the client showed the cause but only "Its
    log" as the hint; the cause's own hint (what to give instead) comes first now."""
    from rcyc_cli.local.stack.client import _start_failure
    from rcyc_core.errors import InputError

    log = tmp_path / "stack.log"
    log.write_text("starting\nerror: bucket name 'B' is bad\nhint: Pass another --bucket.\n")
    failure = _start_failure(3, log)
    assert isinstance(failure, InputError) and "bucket name 'B' is bad" in failure.message
    assert failure.hint.startswith("Pass another --bucket.") and str(log) in failure.hint
    log.write_text("error: no emulator\n")
    assert _start_failure(2, log).hint == f"Its log: {log}"


def test_a_stack_that_could_not_even_write_its_log_on_a_full_disk_says_so(tmp_path, monkeypatch):
    # On a full disk the stack's log stays empty (its error line could not be written either): "it exited with
    # status 1" was all that was said. The free space of its folder names the cause.
    import shutil
    from collections import namedtuple

    from rcyc_cli.local.stack.client import _start_failure

    log = tmp_path / "stack.log"
    log.write_text("")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(48 << 10, 48 << 10, 0))
    failure = _start_failure(1, log)
    assert failure.kind == "DiskFull" and "is full" in failure.message and "RCYC_CACHE_HOME" in failure.hint
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(1 << 40, 1 << 30, 1 << 39))
    assert "exited with status 1" in _start_failure(1, log).message
