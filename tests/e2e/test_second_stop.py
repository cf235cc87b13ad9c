"""A second Ctrl-C (people press it twice), or a SIGTERM after a Ctrl-C, landed in the clean-up of the first:
on a shared bucket (--endpoint-url) the run's prefix stayed behind (its model copy and images), and rcyc
ended by the signal itself (-2, -15) instead of its stop status. Once a stop has begun, further SIGINT,
SIGTERM and SIGHUP only say that rcyc is still stopping: the clean-up runs to its end, nothing stays, and
the status is the first stop's. Real processes: the CLI, the emulator, a moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator import reaper
from tests.conftest import IMAGES, MODELS, ROOT, stops_as_in_a_terminal

PHASE = "invoking the function"


def _start(args, cache, rie_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]), "RCYC_CACHE_HOME": str(cache),
           "RCYC_RIE": str(rie_path)}
    env.pop("AWS_ENDPOINT_URL_S3", None)
    process = subprocess.Popen([sys.executable, "-m", "rcyc_cli.main", "invoke-local", "--no-stack", "--runtime", "process",
                                *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=ROOT, preexec_fn=stops_as_in_a_terminal)
    lines, seen = [], threading.Event()

    def read():
        for line in process.stderr:
            lines.append(line)
            if PHASE in line:
                seen.set()
    threading.Thread(target=read, daemon=True).start()
    return process, lines, seen


def _left_running(cache, monkeypatch) -> list[int]:
    monkeypatch.setenv("RCYC_CACHE_HOME", str(cache))
    return reaper.owned_pids(reaper.cache_tag())


@pytest.mark.parametrize("then", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c-twice", "ctrl-c-then-sigterm"])
def test_a_second_stop_does_not_cut_the_clean_up_short(moto_server, rie_path, tmp_path, monkeypatch, then):
    s3 = cloud_aws.s3_client(moto_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    bucket = f"rev19-second-stop-{then.name.lower()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    cache = tmp_path / "cache"
    process, lines, seen = _start(["--s3-endpoint-url", moto_server.endpoint_url, "--bucket", bucket, "--model",
                                   MODELS["softmax"], *sorted((IMAGES / "boxes").glob("*.jpg"))], cache, rie_path)
    try:
        assert seen.wait(120), "".join(lines)
        time.sleep(0.2)  # the run is in its invocation: its prefix holds the model copy and the images
        process.send_signal(signal.SIGINT)
        for _ in range(10):  # the second stop, again and again, while the first one's clean-up runs
            time.sleep(0.03)
            if process.poll() is not None:
                break
            process.send_signal(then)
        status = process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.5)
    stderr = "".join(lines)
    assert status == 130, stderr
    assert "Traceback" not in stderr and sum(line.startswith("error:") for line in stderr.splitlines()) == 1, stderr
    versions = s3.list_object_versions(Bucket=bucket, Prefix="runs/")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers"), stderr
    assert _left_running(cache, monkeypatch) == []
