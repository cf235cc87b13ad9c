"""rcyc classify against moto's server (behind the fault endpoint, which counts every request) and the real
emulator as the function: bad options are refused before any request, a denied result write costs each
record its stored result (never the run), and a function answering with another model than the pointer's
says so."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_core.manifest import Manifest
from tests.cli import run
from tests.conftest import IMAGES, MODELS
from tests.e2e.cloud_checks import ok

pytestmark = pytest.mark.e2e
SODA = IMAGES / "soda_cans" / "soda_cans_0.jpg"
BOX = IMAGES / "boxes" / "boxes_0.jpg"


@pytest.mark.parametrize("args, says", [
    (["s3://Bad_Name/images/"], "bucket name"),
    (["s3://rcyc-ok-bucket/images/", "--output", "x.txt"], ".jsonl or .csv"),
    (["s3://rcyc-ok-bucket/images/", "--output", "no/such/dir/x.jsonl"], "does not exist"),
    (["s3://rcyc-ok-bucket/images/", "--output", "."], "must end in"),
    (["s3://rcyc-ok-bucket/images/", "--results-prefix", "results"], "must end in '/'"),
])
def test_bad_options_are_refused_before_any_request(aws_via_front, fault_front, args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("classify", *args)
    assert result.exit_code == ExitStatus.BAD_INPUT and says in result.stderr, result.stderr
    assert sum(fault_front.requests.values()) == 0, fault_front.requests


@pytest.fixture
def function(aws_via_front, fault_front, moto_server, bucket, rie_path):
    """A function moto knows (its configuration), answered by the real emulator reading moto's S3."""
    iam, lam = aws_via_front.client("iam"), aws_via_front.client("lambda")
    role = iam.create_role(RoleName=f"{bucket}-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    lam.create_function(FunctionName=f"fn-{bucket}", Role=role, PackageType="Image",
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/rcyc:1"},
                        Environment={"Variables": {"RCYC_MODEL_BUCKET": bucket}})
    box = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url, "RCYC_MODEL_BUCKET": bucket,
                                        "RCYC_MODEL_REFRESH_SECONDS": "0"}, timeout=60)
    box.start()
    fault_front.route(box.endpoint_url, "lambda", r"/invocations$")
    try:
        yield f"fn-{bucket}"
    finally:
        box.stop()


def test_a_denied_result_write_is_one_line_not_a_crash(aws_via_front, bucket, function):
    """A bucket policy denying PutObject on results/*: the run ends with one line naming the write that S3
    refused (issue 23's writer pool ends the run on a failed write, as an unreachable S3 would)."""
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA, BOX))
    aws_via_front.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/results/*"}]}))
    result = run("classify", "--json", "--function", function, f"s3://{bucket}/images/")
    assert result.exit_code == ExitStatus.AWS, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines[-2].startswith("error:") and lines[-1].startswith("hint:")
    assert "AccessDenied" in lines[-2] and "s3:PutObject" in lines[-1]


def test_a_function_answering_with_another_model_than_the_pointers_is_flagged(aws_via_front, bucket, function):
    """The pointer moved to a version the function cannot load (a file changed after publishing): warm
    instances keep serving the old model, and classify says so instead of quietly storing its results."""
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    first = ok(run("classify", "--json", "--function", function, f"s3://{bucket}/images/"))
    assert first["warnings"] == [] and first["classified"] == 1
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["one-vs-rest"]))
    s3 = aws_via_front.client("s3")
    manifest = Manifest.from_json(s3.get_object(Bucket=bucket, Key="models/m/2/manifest.json")["Body"].read())
    s3.put_object(Bucket=bucket, Key=f"models/m/2/{manifest.files_prefix}model_0_prime.tflite", Body=b"broken")
    s3.put_object(Bucket=bucket, Key="models/current.json", Body=json.dumps(
        {"manifest": "models/m/2/manifest.json", "name": "m", "version": "2", "sha256": manifest.sha256}).encode())
    second = run("classify", "--json", "--function", function, f"s3://{bucket}/images/")
    summary = json.loads(second.stdout)
    assert summary["classified"] == 1 and len(summary["warnings"]) == 1, summary
    assert "not the pointer's m 2" in summary["warnings"][0]
    human = run("classify", "--function", function, f"s3://{bucket}/images/")
    assert "not the pointer's" in human.stdout
