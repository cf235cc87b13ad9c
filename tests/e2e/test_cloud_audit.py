"""rcyc doctor --security against moto's server: every careless role, environment, resource policy and trust
policy the second review found said "ok" is a finding now (and what rcyc creates still passes)."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from rcyc_cli.cloud import buckets
from rcyc_cli.cloud.functions import LAMBDA_TRUST_POLICY, role_policy
from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.main import cli

pytestmark = pytest.mark.e2e
ACCOUNT = "123456789012"  # moto's
OTHER = "210987654321"


@pytest.fixture
def setup(aws_on_moto, request):
    """A bucket rcyc created and a function with rcyc's role; each test then makes one thing careless."""
    tag = hashlib.sha256(request.node.name.encode()).hexdigest()[:10]
    bucket, function = f"rcyc-audit-{tag}", f"fn-{tag}"
    buckets.ensure_private_bucket(aws_on_moto.client("s3"), bucket, "us-east-1")
    iam = aws_on_moto.client("iam")
    role = iam.create_role(RoleName=f"{function}-role", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))["Role"]
    iam.put_role_policy(RoleName=f"{function}-role", PolicyName="rcyc-least-privilege",
                        PolicyDocument=json.dumps(role_policy(bucket, "results/")))
    aws_on_moto.client("lambda").create_function(
        FunctionName=function, Role=role["Arn"], Runtime="python3.12", Handler="app.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18}, Environment={"Variables": {"RCYC_MODEL_BUCKET": bucket}})
    return bucket, function


def audit(target: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, ["doctor", "--security", target, "--json"], catch_exceptions=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout or '{"findings": []}')["findings"]}, result.stdout


def test_what_rcyc_creates_passes(setup):
    bucket, function = setup
    code, findings, out = audit(f"{bucket}/{function}")
    assert code == 0, out
    for check in ("role: least privilege", "role: trust policy", "resource policy (invoke)", "function URL",
                  "secrets in environment", "role: managed policies"):
        assert findings[check]["severity"] == "ok", (check, findings[check])


WIDE = {
    "iam:*": {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
    "sts:AssumeRole on *": {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
    "lambda:* on *": {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
    "secretsmanager:GetSecretValue on *": {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
    "S3:* (case)": {"Effect": "Allow", "Action": "S3:*", "Resource": "arn:aws:s3:::{bucket}/models/*"},
    "b/?* (every object)": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{bucket}/?*"},
    "NotAction": {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"},
    "s3:Get* on the bucket": {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::{bucket}/models/*"},
}


@pytest.mark.parametrize("case", list(WIDE))
def test_a_role_granting_more_than_rcyc_is_a_finding_naming_the_grant(aws_on_moto, setup, case):
    bucket, function = setup
    statement = json.loads(json.dumps(WIDE[case]).replace("{bucket}", bucket))
    aws_on_moto.client("iam").put_role_policy(RoleName=f"{function}-role", PolicyName="extra",
                                      PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    code, findings, out = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS, out
    finding = findings["role: least privilege"]
    assert finding["severity"] == "high" and "inline policy extra" in finding["detail"], finding


def test_an_admin_managed_policy_is_read_and_named(aws_on_moto, setup):
    bucket, function = setup
    iam = aws_on_moto.client("iam")
    arn = iam.create_policy(PolicyName="AdminLike", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=f"{function}-role", PolicyArn=arn)
    code, findings, _ = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS
    assert "AdminLike" in findings["role: managed policies"]["detail"]
    assert "managed policy AdminLike allows *" in findings["role: least privilege"]["detail"]


SECRETS = {
    "STRIPE_KEY": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "GH": "ghp_" + "Abcd1234EFGHijklMNOPqrstUVWXyz567890",
    "DATABASE_URL": "postgres://app:s3cretpw@db.internal.example:5432/app",
    "THING": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # a 40-character secret access key, under a bland name
    "SLACK": "xoxb-" + "123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
    # found by the attack pass: a secret's name on a low-entropy value, and a 40-character hex token
    "API_TOKEN": "abc123def456",
    "WEBHOOK": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
}


@pytest.mark.parametrize("name", list(SECRETS))
def test_secrets_in_the_environment_in_their_common_shapes_are_named_never_shown(aws_on_moto, setup, name):
    bucket, function = setup
    aws_on_moto.client("lambda").update_function_configuration(FunctionName=function, Environment={"Variables": {
        "RCYC_MODEL_BUCKET": bucket, "RCYC_POINTER_KEY": "models/current.json", "RCYC_RESULTS_PREFIX": "results/",
        name: SECRETS[name]}})
    code, findings, out = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS, out
    detail = findings["secrets in environment"]["detail"]
    assert name in detail and "RCYC_" not in detail  # rcyc's own variables are not secrets
    assert SECRETS[name] not in out and SECRETS[name][-8:] not in out


@pytest.mark.parametrize("principal, extra, says", [
    ("*", {}, "anyone"),
    (f"arn:aws:iam::{OTHER}:root", {}, "another account"),
    ("s3.amazonaws.com", {}, "the service s3.amazonaws.com"),  # no SourceArn: any account's bucket could invoke it
    # found by the attack pass: principals Lambda stores without {"AWS": ...}
    (OTHER, {}, "another account"),
    (f"arn:aws:iam::{OTHER}:role/x", {"SourceArn": "arn:aws:s3:::x"}, "another account"),
])
def test_a_resource_policy_letting_others_invoke_is_a_finding(aws_on_moto, setup, principal, extra, says):
    bucket, function = setup
    aws_on_moto.client("lambda").add_permission(FunctionName=function, StatementId="careless", Action="lambda:InvokeFunction",
                                        Principal=principal, **extra)
    code, findings, out = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS, out
    assert findings["resource policy (invoke)"]["severity"] == "high" and says in findings["resource policy (invoke)"]["detail"]


def test_rcyc_s_own_trigger_permission_passes(aws_on_moto, setup):
    bucket, function = setup
    aws_on_moto.client("lambda").add_permission(FunctionName=function, StatementId="rcyc-s3", Action="lambda:InvokeFunction",
                                        Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}", SourceAccount=ACCOUNT)
    assert audit(f"{bucket}/{function}")[1]["resource policy (invoke)"]["severity"] == "ok"


@pytest.mark.parametrize("principal, says", [
    ({"AWS": f"arn:aws:iam::{OTHER}:root"}, "another account"),
    ({"AWS": "*"}, "anyone"),
    ({"Service": "ec2.amazonaws.com"}, "ec2.amazonaws.com"),
])
def test_a_trust_policy_letting_others_assume_the_role_is_a_finding(aws_on_moto, setup, principal, says):
    bucket, function = setup
    trust = {"Version": "2012-10-17", "Statement": [LAMBDA_TRUST_POLICY["Statement"][0],
                                                    {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}
    aws_on_moto.client("iam").update_assume_role_policy(RoleName=f"{function}-role", PolicyDocument=json.dumps(trust))
    code, findings, out = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS, out
    assert findings["role: trust policy"]["severity"] == "high" and says in findings["role: trust policy"]["detail"]


def test_a_public_function_url_is_a_finding(aws_on_moto, setup):
    bucket, function = setup
    aws_on_moto.client("lambda").create_function_url_config(FunctionName=function, AuthType="NONE")
    code, findings, _ = audit(f"{bucket}/{function}")
    assert code == ExitStatus.FINDINGS and findings["function URL"]["severity"] == "high"


@pytest.mark.parametrize("target", ["rcyc-audit-x/fn/x", "rcyc-audit-x/fn name", "rcyc-audit-x/" + "f" * 65])
def test_a_target_that_is_no_function_name_is_refused_before_any_request(aws_on_moto, target, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing answers: a request would fail otherwise
    result = CliRunner().invoke(cli, ["doctor", "--security", target], catch_exceptions=False)
    assert result.exit_code == ExitStatus.BAD_INPUT and "not a Lambda function name" in result.stderr
    assert "<html" not in result.stderr.lower()
