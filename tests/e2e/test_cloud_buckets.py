"""Bucket safety and `rcyc doctor --security` against moto's HTTP server: what rcyc creates is private,
encrypted, versioned and TLS-only; public buckets are refused; the audit agrees with AWS on what is public."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.cloud import buckets
from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import MODELS
from tests.e2e.cloud_checks import SODA, audit_json, ok, s3_objects

pytestmark = pytest.mark.e2e


def test_a_bucket_rcyc_creates_is_private_encrypted_versioned_and_tls_only(aws_on_moto, bucket):
    summary = ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    assert summary["bucket_created"] is True
    s3 = aws_on_moto.client("s3")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # A plain-HTTP endpoint is a local emulator: a TLS-only policy would deny every request to it.
    with pytest.raises(Exception, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)
    assert s3.head_object(Bucket=bucket, Key="images/soda_cans_0.jpg")["ContentType"] == "image/jpeg"


def test_a_bucket_created_over_https_also_gets_the_tls_only_policy(moto_in_process):
    """Against an HTTPS endpoint (every AWS one; moto in-process here) all four settings are read back."""
    s3 = cloud_aws.s3_client(region="eu-west-1")
    assert s3.meta.endpoint_url.startswith("https://")
    assert buckets.ensure_private_bucket(s3, "rcyc-tls", "eu-west-1") is True
    block = s3.get_public_access_block(Bucket="rcyc-tls")["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rule = s3.get_bucket_encryption(Bucket="rcyc-tls")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket="rcyc-tls")["Status"] == "Enabled"
    [statement] = json.loads(s3.get_bucket_policy(Bucket="rcyc-tls")["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(statement["Resource"]) == ["arn:aws:s3:::rcyc-tls", "arn:aws:s3:::rcyc-tls/*"]
    assert buckets.public_reasons(s3, "rcyc-tls") == []  # a Deny policy does not make it public
    assert buckets.ensure_private_bucket(s3, "rcyc-tls", "eu-west-1") is False  # used as it is the second time


@pytest.mark.parametrize("how", ["acl", "policy"])
def test_an_existing_public_bucket_is_refused_and_nothing_is_uploaded(aws_on_moto, bucket, how):
    s3 = aws_on_moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    if how == "acl":
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    else:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    for command in (["upload-image", SODA], ["upload-model", MODELS["softmax"]]):
        result = run(*command, "--bucket", bucket)
        assert result.exit_code == ExitStatus.AWS, result.stderr
        assert f"bucket {bucket} is public" in result.stderr and "hint: " in result.stderr
        assert "Traceback" not in result.stderr
    assert s3_objects(aws_on_moto, bucket) == {}


def test_an_existing_private_bucket_is_used_as_it_is(aws_on_moto, bucket):
    s3 = aws_on_moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(buckets.BLOCK_ALL))
    summary = ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    assert summary["bucket_created"] is False
    assert list(s3_objects(aws_on_moto, bucket)) == ["images/soda_cans_0.jpg"]


def test_an_invalid_bucket_name_is_bad_input_without_a_network_hint(aws_on_moto):
    for command in (["upload-image", SODA], ["upload-model", MODELS["softmax"]], ["models", "list"],
                    ["models", "promote", "m", "1"], ["deploy", "--tag", "v1", "--dry-run"], ["invoke", "images/x.jpg"]):
        result = run(*command, "--bucket", "Bad_Bucket!!")
        assert result.exit_code == ExitStatus.BAD_INPUT, (command, result.stderr)
        assert "Bad_Bucket!!" in result.stderr and "network" not in result.stderr and "Traceback" not in result.stderr
    audit = run("doctor", "--security", "Bad_Bucket!!")
    assert audit.exit_code == ExitStatus.BAD_INPUT


def world_readable(bucket: str, condition: dict | None) -> str:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize("condition, public", [
    ({"Bool": {"aws:SecureTransport": "true"}}, True),  # TLS says nothing about who asks
    ({"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}}, True),  # half the internet
    ({"StringEquals": {"aws:SourceVpce": "vpce-*"}}, True),  # a wildcard pins nothing (StringEquals: literal "*"...)
    ({"StringLike": {"aws:SourceVpce": "vpce-*"}}, True),
    ({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, False),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, False),
])
def test_public_means_what_aws_means_for_upload_and_audit(aws_on_moto, bucket, condition, public):
    s3 = aws_on_moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=world_readable(bucket, condition))
    upload = run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"])
    _, findings = audit_json(bucket)
    if public:
        assert upload.exit_code == ExitStatus.AWS and f"bucket {bucket} is public" in upload.stderr
        assert not [k for k in s3_objects(aws_on_moto, bucket) if k.startswith("models/")]
        assert findings["public"]["severity"] == "high"
    else:
        assert upload.exit_code == 0, upload.stderr
        assert findings["public"]["severity"] == "ok"


def test_doctor_security_passes_on_a_bucket_rcyc_created_on_a_local_endpoint(aws_on_moto, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    code, findings = audit_json(bucket)
    assert code == 0, findings
    assert findings["TLS only"]["severity"] == "not applicable"  # rcyc skips that policy here on purpose
    assert {f["severity"] for name, f in findings.items() if name != "TLS only"} == {"ok"}
    # Each careless variant is a finding (exit 8).
    s3 = aws_on_moto.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert audit_json(bucket)[0] == ExitStatus.FINDINGS
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_public_access_block(Bucket=bucket)
    assert audit_json(bucket)[0] == ExitStatus.FINDINGS
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(buckets.BLOCK_ALL))
    assert audit_json(bucket)[0] == 0
