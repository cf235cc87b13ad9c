"""invoke-local --endpoint-url on a bucket that is not there, without --model: it said "s3://B has no current
model" (exit 3) with the hint to publish one, sending the user after a model when the bucket name or the
endpoint was wrong. It now says the bucket is not there (NoSuchBucket, exit 5), before any instance starts,
and leaves nothing at the endpoint; a bucket that is there but holds no model still says so (exit 3)."""

from __future__ import annotations

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from tests.cli import run
from tests.conftest import IMAGES

IMAGE = IMAGES / "boxes" / "boxes_0.jpg"


def _one_error(result, status: int, text: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == status, result.stderr
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


def test_a_bucket_that_is_not_there_is_named_as_such(moto_server, rie_path):
    result = run("invoke-local", "--no-stack", "--runtime", "process", "--rie", rie_path, "--s3-endpoint-url",
                 moto_server.endpoint_url, "--bucket", "rev19-not-there", IMAGE)
    _one_error(result, 5, "there is no bucket rev19-not-there")
    assert "starting 1 Lambda" not in result.stderr
    s3 = cloud_aws.s3_client(moto_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    assert "rev19-not-there" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_bucket_without_a_model_still_says_so(moto_server, rie_path):
    s3 = cloud_aws.s3_client(moto_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    s3.create_bucket(Bucket="rev19-no-model")
    result = run("invoke-local", "--no-stack", "--runtime", "process", "--rie", rie_path, "--s3-endpoint-url",
                 moto_server.endpoint_url, "--bucket", "rev19-no-model", IMAGE)
    _one_error(result, 3, "has no current model")
    assert s3.list_objects_v2(Bucket="rev19-no-model")["KeyCount"] == 0
