"""rcyc doctor --security: the audit of an existing bucket and function (moto in-process: read-only API
calls), and that what rcyc creates passes it."""

import json

import boto3
import pytest

from rcyc_cli.cloud.functions import role_policy
from rcyc_cli.cloud import buckets
from rcyc_cli.exit_status import ExitStatus
from tests.cli import run

FAKE_KEY = "AKIARCYCFAKEKEY00042"


@pytest.fixture
def moto_session(moto_in_process, monkeypatch):
    """A boto3 session on moto in this process (no server), in us-east-1."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return boto3.session.Session(region_name="us-east-1")


def audit(target):
    result = run("doctor", "--security", target, "--json")
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)["findings"]}, result


def make_function(session, bucket, name, policy, env=None, managed=None):
    iam = session.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                      "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=f"{name}-role", PolicyName="rcyc", PolicyDocument=json.dumps(policy))
    if managed:
        arn = iam.create_policy(PolicyName=managed, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=f"{name}-role", PolicyArn=arn)
    session.client("lambda").create_function(
        FunctionName=name, Role=role["Arn"], Runtime="python3.12", Handler="app.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}, Environment={"Variables": env or {"RCYC_MODEL_BUCKET": bucket}})


def test_what_rcyc_creates_passes_the_audit(moto_session):
    s3 = moto_session.client("s3")
    assert buckets.ensure_private_bucket(s3, "rcyc-audit-good", "us-east-1")  # TLS-only policy included: AWS endpoint
    make_function(moto_session, "rcyc-audit-good", "good-fn", role_policy("rcyc-audit-good", results_prefix="results/"))
    code, findings, result = audit("rcyc-audit-good/good-fn")
    assert code == 0, result.stdout
    assert {f["severity"] for f in findings.values()} == {"ok"}
    assert set(findings) >= {"public access block", "default encryption", "versioning", "TLS only", "role: least privilege",
                             "secrets in environment", "role: managed policies"}


def test_a_careless_setup_is_reported_finding_by_finding(moto_session):
    s3 = moto_session.client("s3")
    s3.create_bucket(Bucket="rcyc-audit-bad")
    s3.put_public_access_block(Bucket="rcyc-audit-bad", PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    s3.put_bucket_policy(Bucket="rcyc-audit-bad", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::rcyc-audit-bad/*"}]}))
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    make_function(moto_session, "rcyc-audit-bad", "bad-fn", wide, env={"AWS_SECRET_ACCESS_KEY": "x", "OTHER": FAKE_KEY},
                  managed="AdminLike")
    code, findings, result = audit("rcyc-audit-bad/bad-fn")
    assert code == ExitStatus.FINDINGS
    for check in ("public access block", "public", "role: managed policies", "role: least privilege", "secrets in environment"):
        assert findings[check]["severity"] == "high" and findings[check]["fix"], check
    for check in ("default encryption", "versioning", "TLS only"):
        assert findings[check]["severity"] in ("medium", "ok"), check  # moto may default some of these on
    assert FAKE_KEY not in result.stdout  # named, never shown
    assert "AWS_SECRET_ACCESS_KEY" in findings["secrets in environment"]["detail"]


def test_role_reaching_another_bucket_is_a_finding(moto_session):
    buckets.ensure_private_bucket(moto_session.client("s3"), "rcyc-audit-reach", "us-east-1")
    policy = role_policy("rcyc-audit-reach")
    policy["Statement"][0]["Resource"].append("arn:aws:s3:::someone-elses-bucket/*")
    make_function(moto_session, "rcyc-audit-reach", "reach-fn", policy)
    code, findings, _ = audit("rcyc-audit-reach/reach-fn")
    assert code == ExitStatus.FINDINGS and "someone-elses-bucket" in findings["role: least privilege"]["detail"]


def test_audit_without_credentials_is_one_line(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    result = run("doctor", "--security", "some-bucket/some-fn")
    assert result.exit_code == 5 and "no AWS credentials" in result.stderr and "Traceback" not in result.stderr


def test_what_rcyc_creates_with_a_trigger_passes_the_audit_on_aws(moto_session):
    s3 = moto_session.client("s3")
    assert buckets.is_aws_endpoint(s3)  # moto in-process answers at AWS's own https endpoints
    buckets.ensure_private_bucket(s3, "rcyc-audit-trig", "us-east-1")
    make_function(moto_session, "rcyc-audit-trig", "trig-fn", role_policy("rcyc-audit-trig", "results/", "incoming/"))
    code, findings, result = audit("rcyc-audit-trig/trig-fn")
    assert code == 0, result.stdout
    assert findings["TLS only"]["severity"] == "ok"  # on AWS the check applies, and rcyc's policy passes it


def _world_readable_with_tls(s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        buckets.tls_only_policy(bucket)["Statement"][0],
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}))


CARELESS = {
    # variant: (what to do to an rcyc bucket, the check that must fail)
    "public policy with only a TLS condition": (lambda s3, b: (s3.delete_public_access_block(Bucket=b), _world_readable_with_tls(s3, b)), "public"),
    "ACL to every AWS account": (lambda s3, b: (s3.delete_public_access_block(Bucket=b),
                                                s3.put_bucket_acl(Bucket=b, ACL="authenticated-read")), "public"),
    "ACL to everyone": (lambda s3, b: (s3.delete_public_access_block(Bucket=b), s3.put_bucket_acl(Bucket=b, ACL="public-read")), "public"),
    "public access block off": (lambda s3, b: s3.delete_public_access_block(Bucket=b), "public access block"),
    "no TLS-only policy": (lambda s3, b: s3.delete_bucket_policy(Bucket=b), "TLS only"),
    "versioning suspended": (lambda s3, b: s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"}),
                             "versioning"),
}


@pytest.mark.parametrize("variant", sorted(CARELESS))
def test_each_careless_variant_of_an_rcyc_bucket_is_a_finding(moto_session, variant):
    s3 = moto_session.client("s3")
    bucket = "rcyc-careless-" + str(sorted(CARELESS).index(variant))
    buckets.ensure_private_bucket(s3, bucket, "us-east-1")
    assert audit(bucket)[0] == 0
    change, check = CARELESS[variant]
    change(s3, bucket)
    code, findings, result = audit(bucket)
    assert code == ExitStatus.FINDINGS, result.stdout
    assert findings[check]["severity"] in ("high", "medium") and findings[check]["fix"]


@pytest.mark.parametrize("resource", ["arn:aws:s3:::rcyc-audit-wide/*", "*", "arn:aws:s3:::rcyc-audit-wide/models*/x*"])
def test_a_role_reaching_the_whole_bucket_is_a_finding(moto_session, resource):
    buckets.ensure_private_bucket(moto_session.client("s3"), "rcyc-audit-wide", "us-east-1")
    policy = role_policy("rcyc-audit-wide")
    policy["Statement"][0]["Resource"] = [resource]
    name = "wide-" + str(abs(hash(resource)) % 10000)
    make_function(moto_session, "rcyc-audit-wide", name, policy)
    assert audit(f"rcyc-audit-wide/{name}")[0] == ExitStatus.FINDINGS
