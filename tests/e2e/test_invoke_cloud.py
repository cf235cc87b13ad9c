"""`rcyc invoke --endpoint-url` against the real Lambda emulator reading moto's S3 (moto cannot invoke image
functions): the prediction, a promoted model reaching a warm instance, a missing function, refused models."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.cloud import buckets, store
from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_core.manifest import Manifest
from tests.cli import run
from tests.conftest import MODELS
from tests.e2e.cloud_checks import SODA, ok, repackaged

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox(aws_on_moto, moto_server, bucket, rie_path):
    """One function instance (the real emulator + awslambdaric) reading the moto S3; it re-checks the
    pointer on every invocation."""
    box = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url, "RCYC_MODEL_BUCKET": bucket,
                                        "RCYC_MODEL_REFRESH_SECONDS": "0"}, timeout=60)
    box.start()
    try:
        yield box
    finally:
        box.stop()
        assert box.process.poll() is not None


def test_invoke_shows_the_prediction_from_the_function(aws_on_moto, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["one-vs-rest"]))
    uploaded = ok(run("upload-image", "--json", "--bucket", bucket, "--invoke", "--endpoint-url", sandbox.endpoint_url, SODA))
    assert uploaded["invoke"]["response"]["results"][0]["label"] == "soda_cans"
    output = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    [result] = output["results"]
    assert (result["bucket"], result["key"], result["label"]) == (bucket, "images/soda_cans_0.jpg", "soda_cans")
    assert list(result["scores"]) == ["boxes", "glass_bottles", "soda_cans", "crushed_soda_cans", "plastic_bottles"]
    assert output["model"]["name"] == "fixture-psu"
    assert output["invocation"]["function"] == "function"
    human = run("invoke", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert human.exit_code == 0 and "▶ soda_cans" in human.stdout
    missing = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg", "images/nope.jpg")
    assert missing.exit_code == ExitStatus.RECORD_ERRORS
    body = json.loads(missing.stdout)
    assert [e["error"] for e in body["errors"]] == ["NoSuchKey"] and len(body["results"]) == 1


def test_a_promoted_model_reaches_a_warm_instance_without_a_restart(aws_on_moto, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["one-vs-rest"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    pid = sandbox.process.pid
    first = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert first["model"]["name"] == "fixture-psu" and first["results"][0]["label"] == "soda_cans"
    ok(run("upload-model", "--json", "--bucket", bucket, "--no-promote", MODELS["softmax"]))
    unchanged = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert unchanged["model"]["name"] == "fixture-psu"  # uploaded but not promoted: not live
    softmax = Manifest.load(MODELS["softmax"])
    ok(run("models", "promote", "--json", "--bucket", bucket, softmax.name, softmax.version))
    second = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert second["model"] == softmax.summary()
    assert second["results"][0]["label"] == "soda_cans"
    assert [len(r) for r in first["results"][0]["raw"]] == [2] * 5  # one-vs-rest: five networks of two outputs
    assert len(second["results"][0]["raw"]) == 5 and all(isinstance(v, float) for v in second["results"][0]["raw"])
    assert sandbox.process.pid == pid and sandbox.process.poll() is None
    log = sandbox.read_log().decode()
    assert log.count("INIT REPORT") == 1 and log.count("REPORT RequestId") == 3  # one cold start, then warm
    assert [json.loads(line)["model"]["name"] for line in log.splitlines() if '"rcyc": "model_loaded"' in line] == \
        ["fixture-psu", softmax.name]


def test_invoking_a_missing_function_says_so(aws_on_moto, bucket):
    result = run("invoke", "--json", "--bucket", bucket, "--function", "no-such-function", "images/x.jpg")
    assert result.exit_code == ExitStatus.AWS and result.stdout == ""
    assert "ResourceNotFoundException" in result.stderr and "region" in result.stderr


def test_a_cold_instance_refuses_a_manifest_changed_after_publishing(aws_on_moto, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    # Rewritten behind rcyc's back (rcyc itself refuses): the pointer still names the published sha256.
    other = Manifest.load(MODELS["one-vs-rest"])
    import dataclasses

    other = dataclasses.replace(other, name="m", version="1")
    aws_on_moto.client("s3").put_object(Bucket=bucket, Key="models/m/1/manifest.json", Body=other.to_json().encode())
    result = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert result.exit_code == ExitStatus.RECORD_ERRORS, result.stderr
    [error] = json.loads(result.stdout)["errors"]
    assert error["error"] == "ModelIntegrityError" and "pointer" in error["message"]


def test_a_function_instance_refuses_a_model_whose_outputs_break_its_layout(aws_on_moto, bucket, sandbox, tmp_path):
    """Put into the bucket past upload-model's check (as any other S3 writer could): the function checks too."""
    directory = repackaged(tmp_path, "softmax", {"model.tflite": MODELS["one-vs-rest"] / "model_0_prime.tflite"})
    s3 = aws_on_moto.client("s3")
    buckets.ensure_private_bucket(s3, bucket)
    store.put_model(s3, bucket, Manifest.load(directory), directory)
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    result = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert result.exit_code == ExitStatus.RECORD_ERRORS, result.stderr
    [error] = json.loads(result.stdout)["errors"]
    assert error["error"] == "InvalidModelOutput" and "softmax needs (5,)" in error["message"]
