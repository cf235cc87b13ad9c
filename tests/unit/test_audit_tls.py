"""The TLS-only check, statement by statement over every S3 action on the bucket and on its objects (moto
in-process: it answers at AWS's own https endpoints, where the check applies)."""

import json

import boto3
import pytest
from click.testing import CliRunner

from rcyc_cli.cloud import buckets, policies
from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.main import cli

B = "rcyc-tls"


def deny(action=None, resource=None, not_action=None, principal="*"):
    statement = {"Effect": "Deny", "Principal": principal,
                 "Resource": resource if resource is not None else [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    if not_action:
        statement["NotAction"] = not_action
    else:
        statement["Action"] = action or "s3:*"
    return statement


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


CASES = {
    # name: (policy, covered?)
    "rcyc's own policy": (buckets.tls_only_policy(B), True),
    "S3:* in another case": (doc(deny(action="S3:*")), True),
    "Action *": (doc(deny(action="*")), True),
    "split over two statements": (doc(deny(resource=f"arn:aws:s3:::{B}"), deny(resource=f"arn:aws:s3:::{B}/*")), True),
    "Resource *": (doc(deny(resource="*")), True),
    "only s3:GetObject": (doc(deny(action="s3:GetObject")), False),
    "only the bucket ARN": (doc(deny(resource=f"arn:aws:s3:::{B}")), False),
    "only the objects": (doc(deny(resource=f"arn:aws:s3:::{B}/*")), False),
    "another bucket": (doc(deny(resource=["arn:aws:s3:::other", "arn:aws:s3:::other/*"])), False),
    "NotAction leaves GetObject": (doc(deny(not_action="s3:GetObject")), False),
    "a Deny for one account only": (doc(deny(principal={"AWS": "arn:aws:iam::123456789012:root"})), False),
    "only models/*": (doc(deny(resource=[f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/models/*"])), False),
    "s3:Get* and s3:Put*": (doc(deny(action=["s3:Get*", "s3:Put*"])), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tls_only_gaps_per_statement(case):
    policy, covered = CASES[case]
    gaps = policies.tls_only_gaps(policy, B)
    assert (gaps == []) is covered, gaps


@pytest.fixture
def aws(moto_in_process, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return boto3.session.Session(region_name="us-east-1")


@pytest.mark.parametrize("case", ["only s3:GetObject", "only the bucket ARN", "another bucket", "NotAction leaves GetObject"])
def test_doctor_security_counts_a_partial_tls_policy_as_a_finding(aws, case):
    s3 = aws.client("s3")
    buckets.ensure_private_bucket(s3, B, "us-east-1")
    s3.put_bucket_policy(Bucket=B, Policy=json.dumps(CASES[case][0]))
    result = CliRunner().invoke(cli, ["doctor", "--security", B, "--json"], catch_exceptions=False)
    assert result.exit_code == ExitStatus.FINDINGS, result.stdout
    tls = {f["check"]: f for f in json.loads(result.stdout)["findings"]}["TLS only"]
    assert tls["severity"] == "medium" and "without TLS can still reach" in tls["detail"]


@pytest.mark.parametrize("pattern, allowed, inside", [
    ("arn:aws:s3:::b/models/*", "arn:aws:s3:::b/models/*", True),
    ("arn:aws:s3:::b/models/x/*", "arn:aws:s3:::b/models/*", True),
    ("arn:aws:s3:::b/?*", "arn:aws:s3:::b/models/*", False),
    ("arn:aws:s3:::b/*", "arn:aws:s3:::b/models/*", False),
    ("arn:aws:s3:::b/models*", "arn:aws:s3:::b/models/*", False),
    ("*", "arn:aws:s3:::b/models/*", False),
    ("arn:aws:s3:::b", "*", True),
    ("arn:aws:s3:::b/models/*", "arn:aws:s3:::b/mo?els/*", False),  # never generous with inner wildcards
])
def test_resource_containment(pattern, allowed, inside):
    assert policies.within(pattern, allowed) is inside
