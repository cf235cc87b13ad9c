"""`rcyc upload-image` against moto's HTTP server: only images, content types, directories and patterns, a
refused write as one line."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import IMAGES, MODELS, bad_images
from tests.e2e.cloud_checks import SODA, ok, pointer, s3_objects

pytestmark = pytest.mark.e2e


BOX = IMAGES / "boxes" / "boxes_0.jpg"


def test_upload_image_refuses_files_that_do_not_decode(aws_on_moto, bucket):
    for bad in bad_images():
        result = run("upload-image", "--bucket", bucket, SODA, bad)
        assert result.exit_code == ExitStatus.BAD_INPUT, (bad, result.stderr)
        assert str(bad) in result.stderr and "hint: " in result.stderr
    assert aws_on_moto.client("s3").list_buckets()["Buckets"] == [] or bucket not in [b["Name"] for b in aws_on_moto.client("s3").list_buckets()["Buckets"]]


def test_upload_image_prints_keys_and_sets_content_types(aws_on_moto, bucket):
    png = IMAGES / "edge" / next(p.name for p in (IMAGES / "edge").iterdir() if p.suffix == ".png")
    result = run("upload-image", "--bucket", bucket, "--prefix", "images/batch1", SODA, png)
    assert result.exit_code == 0, result.stderr
    assert f"s3://{bucket}/images/batch1/soda_cans_0.jpg" in result.stdout
    s3 = aws_on_moto.client("s3")
    assert s3.head_object(Bucket=bucket, Key=f"images/batch1/{png.name}")["ContentType"] == "image/png"


def test_a_refused_s3_write_is_one_line_for_models_and_images(aws_on_moto, bucket):
    """A bucket policy denying s3:PutObject (on AWS: a missing permission, a KMS denial, an SCP) makes
    boto3's upload_file raise S3UploadFailedError, not a ClientError: still one line, exit 5."""
    ok(run("upload-image", "--json", "--bucket", bucket, BOX))  # rcyc creates the bucket
    s3 = aws_on_moto.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": [f"arn:aws:s3:::{bucket}/models/*", f"arn:aws:s3:::{bucket}/images/*"]}]}))
    for command in (["upload-model", "--json", MODELS["softmax"]], ["upload-image", "--json", SODA]):
        result = run(*command, "--bucket", bucket)
        assert result.exit_code == ExitStatus.AWS, result.stderr
        assert "AccessDenied" in result.stderr and "hint: " in result.stderr and "bucket policy" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert pointer_or_none(aws_on_moto, bucket) is None
    assert "images/soda_cans_0.jpg" not in s3_objects(aws_on_moto, bucket)


def pointer_or_none(aws_on_moto, bucket):
    try:
        return pointer(aws_on_moto, bucket)
    except aws_on_moto.client("s3").exceptions.NoSuchKey:
        return None


def test_upload_image_takes_directories_and_glob_patterns(aws_on_moto, bucket):
    directory = ok(run("upload-image", "--json", "--bucket", bucket, IMAGES / "boxes"))
    expected = sorted(p.name for p in (IMAGES / "boxes").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert sorted(e["key"].rsplit("/", 1)[1] for e in directory["images"]) == expected
    pattern = ok(run("upload-image", "--json", "--bucket", bucket, "--prefix", "images/glob", str(IMAGES / "soda_cans" / "*_0.jpg")))
    assert [e["key"] for e in pattern["images"]] == ["images/glob/soda_cans_0.jpg"]
    nothing = run("upload-image", "--bucket", bucket, str(IMAGES / "soda_cans" / "*.nope"))
    assert nothing.exit_code == ExitStatus.BAD_INPUT and "no files match" in nothing.stderr
