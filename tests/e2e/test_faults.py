"""Faults and load through the real processes: S3 disappearing mid-run, 1,000 invocations of mixed
records over a pool, and secrets that must never leak. Figures are printed, never asserted as timings."""

import json
import statistics
import time

import pytest
from moto.server import ThreadedMotoServer

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.ports import free_port
from tests.e2e.cloud_fixtures import seed_bucket
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_cli.local.emulator.pool import Pool
from rcyc_core import events
from rcyc_core.manifest import Manifest
from tests.cli import run
from tests.conftest import IMAGES, MODELS

pytestmark = pytest.mark.e2e
BUCKET = "faults"


def start_s3(port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def prepare(endpoint: str):
    s3 = cloud_aws.s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    seed_bucket(s3, BUCKET, Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"])
    s3.put_object(Bucket=BUCKET, Key="images/box.jpg", Body=(IMAGES / "boxes" / "boxes_0.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="images/text.jpg", Body=(IMAGES / "bad" / "not_an_image.jpg").read_bytes())
    return s3


@pytest.fixture
def prepared_s3():
    """moto's server on a free 127.0.0.1 port with the bucket, the model and two images; stopped after."""
    port = free_port()
    server = start_s3(port)
    try:
        prepare(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_s3_going_away_gives_record_errors_and_the_instance_recovers(rie_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_s3(port)
    sandbox = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": endpoint, "RCYC_MODEL_BUCKET": BUCKET,
                                           "RCYC_MODEL_REFRESH_SECONDS": "0"}, timeout=60)
    event = events.make_event(BUCKET, ["images/box.jpg", "images/box.jpg"])
    try:
        prepare(endpoint)
        sandbox.start()
        assert [r["label"] for r in sandbox.invoke(event).response["results"]] == ["boxes", "boxes"]
        pid = sandbox.runtime_pid

        server.stop()  # S3 goes away between invocations of a warm instance
        started = time.perf_counter()
        down = sandbox.invoke(event).response
        seconds = time.perf_counter() - started
        assert down["results"] == [] and len(down["errors"]) == 2
        assert {e["error"] for e in down["errors"]} <= {"S3Unreachable", "ModelUnavailable"}
        print(f"\nS3 down: {len(down['errors'])} record errors in {seconds:.2f} s (function timeout 60 s)")

        server = start_s3(port)  # S3 comes back (moto keeps its state in this process)
        back = sandbox.invoke(event).response
        assert [r["label"] for r in back["results"]] == ["boxes", "boxes"]
        assert sandbox.runtime_pid == pid  # the same warm instance, never restarted
    finally:
        sandbox.stop()
        server.stop()


@pytest.mark.slow  # a thousand invocations
def test_load_a_thousand_invocations_of_mixed_records_loses_nothing(rie_path, prepared_s3):
    env = {"AWS_ENDPOINT_URL_S3": prepared_s3, "RCYC_MODEL_BUCKET": BUCKET}
    pool = Pool(lambda i: ProcessSandbox(rie_path, env=env, timeout=60, name=f"load-{i}"), 2)
    shapes = [["images/box.jpg"], ["images/box.jpg", "images/missing.jpg"], ["images/text.jpg", "images/box.jpg", "images/box.jpg"],
              ["images/missing.jpg"]]
    expected = {"results": 0, "errors": 0}
    got = {"results": 0, "errors": 0, "skipped": 0}
    latencies = []
    try:
        pool.start(warm=True)
        from concurrent.futures import ThreadPoolExecutor

        def one(i):
            keys = shapes[i % len(shapes)]
            answer, _ = pool.invoke(events.make_event(BUCKET, keys))
            return keys, answer

        with ThreadPoolExecutor(max_workers=2) as workers:
            for keys, answer in workers.map(one, range(1000)):
                expected["results"] += keys.count("images/box.jpg")
                expected["errors"] += len(keys) - keys.count("images/box.jpg")
                for name in got:
                    got[name] += len(answer.response[name])
                assert sorted(e["record"] for e in answer.response["results"] + answer.response["errors"]) == list(range(len(keys)))
                latencies.append(answer.wall_ms)
        crashes = sum(instance.restarts for instance in pool.instances)
    finally:
        pool.stop()
    latencies.sort()
    print(f"\nload: 1000 invocations, {sum(expected.values())} records, results {got['results']}, errors {got['errors']}, "
          f"lost {sum(expected.values()) - got['results'] - got['errors']}, emulator crashes {crashes}; latency ms "
          f"p50 {latencies[499]:.1f} p95 {latencies[949]:.1f} p99 {latencies[989]:.1f} max {latencies[-1]:.1f} "
          f"mean {statistics.fmean(latencies):.1f}")
    assert got["results"] == expected["results"] and got["errors"] == expected["errors"] and got["skipped"] == 0
    assert crashes == 0


FAKE = {"AWS_ACCESS_KEY_ID": "AKIARCYCFAKEKEY00001", "AWS_SECRET_ACCESS_KEY": "rcycFAKEsecretDOnotLEAK0000000000000000",
        "AWS_SESSION_TOKEN": "rcycFAKEsessionTOKENdoNOTleak"}


def test_no_credential_reaches_the_function_its_logs_or_the_output(rie_path, monkeypatch, tmp_path):
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    result = run("invoke-local", "--json", "--logs", "--rie", rie_path, IMAGES / "boxes" / "boxes_0.jpg", IMAGES / "bad" / "empty.jpg")
    assert result.exit_code == 7, result.stderr
    output = json.loads(result.stdout)
    assert output["results"][0]["label"] == "boxes" and output["errors"][0]["error"] == "EmptyImage"
    assert "START RequestId" in result.stderr  # the function's log really was printed
    for value in FAKE.values():
        assert value not in result.stdout and value not in result.stderr
    sandbox = ProcessSandbox(rie_path, env={})
    sandbox._workdir = tmp_path
    assert not set(FAKE.values()) & set(sandbox.environment().values())  # the environment the function gets


def test_a_dead_emulator_is_replaced_and_the_request_still_answered(rie_path, prepared_s3):
    env = {"AWS_ENDPOINT_URL_S3": prepared_s3, "RCYC_MODEL_BUCKET": BUCKET}
    pool = Pool(lambda i: ProcessSandbox(rie_path, env=env, timeout=60, name=f"crash-{i}"), 1)
    try:
        pool.start(warm=True)
        [instance] = pool.instances
        first = instance.sandbox
        first.process.kill()  # the emulator dies between requests
        first.process.wait()
        answer, same = pool.invoke(events.make_event(BUCKET, ["images/box.jpg"]))
        assert answer.response["results"][0]["label"] == "boxes"
        assert same is instance and instance.restarts == 1 and instance.sandbox is not first
    finally:
        pool.stop()
