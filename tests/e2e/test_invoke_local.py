"""End to end through the real processes: the Lambda Runtime Interface Emulator binary, awslambdaric
running lambda/app.handler, and moto's S3 HTTP server, all on free 127.0.0.1 ports."""

import json

import pytest

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.function_spec import FunctionSpec
from rcyc_cli.local.emulator.launcher import FunctionLauncher
from tests.e2e.cloud_fixtures import seed_bucket
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_core import events
from rcyc_core.errors import FunctionError
from rcyc_cli.exit_status import ExitStatus, for_error
from rcyc_core.manifest import Manifest
from tests.conftest import FIXTURES, IMAGES, MODELS, class_images, edge_images
from tests.cli import run

pytestmark = pytest.mark.e2e
BUCKET = "recycle-able-image"



@pytest.fixture(autouse=True)
def process_runtime(monkeypatch):
    """These tests are about the process runtime, even where a Docker engine answers (test_e2e_docker)."""
    monkeypatch.setenv("RCYC_RUNTIME", "process")


@pytest.fixture
def s3_server():
    server = EmbeddedS3().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack(s3_server, rie_path, tmp_path):
    """A bucket with the fixture model, and one warm-able function instance pointed at it (rcyc's own start-up
    sequence, as invoke-local and the stack use it)."""
    s3 = cloud_aws.s3_client(s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    launcher = FunctionLauncher(FunctionSpec(runtime="process", rie=str(rie_path), timeout=30))
    seed_bucket(s3, BUCKET, Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"])
    pool = launcher.start(s3_server.endpoint_url, BUCKET, refresh_seconds=0)
    sandbox = pool.instances[0].sandbox
    try:
        yield s3, sandbox
    finally:
        pool.stop()
        assert sandbox.process.poll() is not None  # stopped by its own handle


@pytest.mark.parametrize("layout", ["one-vs-rest", "softmax"])
def test_invoke_local_matches_predict_for_every_fixture_image(layout, rie_path):
    images = [p for _, p in class_images()] + edge_images()
    local = run("invoke-local", "--json", "--rie", rie_path, "--model", MODELS[layout], *images)
    assert local.exit_code == 0, local.stderr
    predicted = run("predict", "--json", "--model", MODELS[layout], *images)
    local_results, predicted_results = json.loads(local.stdout)["results"], json.loads(predicted.stdout)["results"]
    assert len(local_results) == len(predicted_results) == len(images)
    for remote, here in zip(local_results, predicted_results):
        assert remote["key"] == f"images/{here['key'].rsplit('/', 1)[-1]}"
        assert remote["label"] == here["label"]
        assert max(abs(remote["scores"][k] - here["scores"][k]) for k in here["scores"]) <= 1e-4
    for (label, _), result in zip(class_images(), local_results):
        assert result["label"] == label


def test_default_invocation_reports_emulator_figures(rie_path):
    result = run("invoke-local", "--json", "--rie", rie_path)
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["results"][0]["label"] == "soda_cans"
    assert output["results"][0]["bucket"] == BUCKET
    report = output["invocation"]["report"]
    assert report["cold"] is True and report["init_ms"] > 0 and report["duration_ms"] > 0
    assert output["invocation"]["runtime"] == "process"


def test_mixed_event_through_the_emulator(rie_path):
    result = run("invoke-local", "--json", "--rie", rie_path, "--event", FIXTURES / "events" / "mixed.json",
                 IMAGES / "boxes" / "boxes_0.jpg", IMAGES / "glass_bottles" / "glass_bottles_0.jpg",
                 IMAGES / "bad" / "not_an_image.jpg")
    assert result.exit_code == ExitStatus.RECORD_ERRORS
    output = json.loads(result.stdout)
    assert [(r["record"], r["label"]) for r in output["results"]] == [(0, "boxes"), (4, "glass_bottles")]
    assert [(e["record"], e["error"]) for e in output["errors"]] == [(1, "NoSuchKey"), (2, "NotAnImage")]
    assert [s["record"] for s in output["skipped"]] == [3]


def test_seed_event_verbatim(rie_path):
    result = run("invoke-local", "--json", "--rie", rie_path, "--event", FIXTURES / "events" / "seed.json",
                 IMAGES / "soda_cans" / "soda_cans_0.jpg")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["label"] == "soda_cans"


def test_instance_stays_warm_after_bad_records(stack):
    s3, sandbox = stack
    s3.put_object(Bucket=BUCKET, Key="images/a b.jpg", Body=(IMAGES / "boxes" / "boxes_2.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="images/empty.jpg", Body=b"")
    first = sandbox.invoke(events.make_event(BUCKET, ["images/a b.jpg", "images/empty.jpg", "images/missing.jpg"]))
    assert first.report.cold and [r["key"] for r in first.response["results"]] == ["images/a b.jpg"]
    assert [e["error"] for e in first.response["errors"]] == ["EmptyImage", "NoSuchKey"]
    pid = sandbox.process.pid
    for bad_event in ({"Records": "x"}, {"Records": [None, 7]}, {"hello": "world"}):
        response = sandbox.invoke(bad_event).response
        assert response["results"] == [] and response["errors"]
    second = sandbox.invoke(events.make_event(BUCKET, ["images/a b.jpg"]))
    assert not second.report.cold and second.report.duration_ms is not None
    assert second.response["results"][0]["label"] == "boxes"
    assert sandbox.process.pid == pid and sandbox.process.poll() is None


def test_endpoint_url_uses_an_existing_s3(s3_server, rie_path):
    # --model: a bucket without a current model of its own (issue 21: its model is used for this run only)
    result = run("invoke-local", "--json", "--rie", rie_path, "--endpoint-url", s3_server.endpoint_url, "--bucket", "other-bucket",
                 "--model", MODELS["one-vs-rest"], IMAGES / "plastic_bottles" / "plastic_bottles_1.jpg")
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["results"][0]["label"] == "plastic_bottles"
    # A bucket others can reach: this run's images (and its own model pointer) under a prefix of its own,
    # removed afterwards; the shared "current model" pointer is left alone.
    prefix = output["invocation"]["prefix"]
    assert prefix.startswith("runs/") and output["results"][0]["key"] == f"{prefix}images/plastic_bottles_1.jpg"
    s3 = cloud_aws.s3_client(s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    assert s3.list_objects_v2(Bucket="other-bucket", Prefix="runs/")["KeyCount"] == 0
    assert s3.list_objects_v2(Bucket="other-bucket", Prefix="models/")["KeyCount"] == 0  # no model published
    block = s3.get_public_access_block(Bucket="other-bucket")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_function_timeout_is_a_clear_error_and_the_next_invoke_works(rie_path, stack, tmp_path):
    s3, _ = stack
    s3.put_object(Bucket=BUCKET, Key="images/a.jpg", Body=(IMAGES / "boxes" / "boxes_0.jpg").read_bytes())
    # The first invocation is slower than the timeout (a handler patched in through sitecustomize, in the
    # runtime process only); the emulator times it out and restarts the runtime for the next one.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, time, rcyc_core.function as f\n"
        "orig = f.Function.handle\n"
        "def slow_once(self, e, c=None):\n"
        "    marker = os.path.join(os.environ['RCYC_TEST_DIR'], 'slept')\n"
        "    if not os.path.exists(marker):\n"
        "        open(marker, 'w').close()\n"
        "        time.sleep(5)\n"
        "    return orig(self, e, c)\n"
        "f.Function.handle = slow_once\n"
    )
    sandbox = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url, "RCYC_MODEL_BUCKET": BUCKET,
                                            "RCYC_TEST_DIR": str(tmp_path)}, timeout=2)
    sandbox.extra_env["PYTHONPATH"] = f"{tmp_path}:{sandbox.function_dir}"
    sandbox.start()
    try:
        with pytest.raises(FunctionError) as caught:
            sandbox.invoke(events.make_event(BUCKET, ["images/a.jpg"]))
        assert caught.value.kind == "Timeout" and for_error(caught.value) == ExitStatus.FUNCTION_FAILED
        assert "timed out" in caught.value.message
        after = sandbox.invoke(events.make_event(BUCKET, ["images/a.jpg"]))
        assert after.response["results"][0]["label"] == "boxes"
    finally:
        sandbox.stop()


@pytest.mark.parametrize("failure", [FunctionError("boom", kind="EmulatorError")], ids=["error"])
def test_everything_started_is_stopped_on_errors(rie_path, monkeypatch, failure):
    """(Ctrl-C, SIGTERM and SIGHUP are real signals to a real rcyc process: test_lifecycle.py.)"""
    started = []

    def interrupted(self, event):
        started.append(self)
        raise failure

    monkeypatch.setattr(ProcessSandbox, "invoke", interrupted)
    servers = []
    original_start = EmbeddedS3.start
    monkeypatch.setattr(EmbeddedS3, "start", lambda self: servers.append(self) or original_start(self))
    result = run("invoke-local", "--rie", rie_path, IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == (130 if failure is KeyboardInterrupt else ExitStatus.FUNCTION_FAILED)
    assert "Traceback" not in result.stderr
    [sandbox] = started
    assert sandbox.process.poll() is not None  # the emulator (and its runtime child, same session) is gone
    [server] = servers
    import socket

    from urllib.parse import urlsplit

    address = urlsplit(server.endpoint_url)
    host, port = address.hostname, address.port
    with socket.socket() as probe:
        assert probe.connect_ex((host, port)) != 0  # the embedded S3 no longer listens
