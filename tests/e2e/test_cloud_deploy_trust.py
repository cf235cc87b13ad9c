"""Deploys that converge or refuse before writing, against moto's server (S3, IAM, ECR API, Lambda API), the
CNCF registry and the Docker engine; a smoke invoke reaches the real emulator (moto cannot run image
functions: the fault endpoint in front of moto routes Lambda's invokes to it)."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.cloud.functions import LAMBDA_TRUST_POLICY, ROLE_POLICY_NAME
from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from tests.cli import run
from tests.conftest import IMAGES, MODELS, build_args
from tests.e2e.cloud_checks import ok

pytestmark = pytest.mark.e2e
OTHER = "210987654321"
SODA = IMAGES / "soda_cans" / "soda_cans_0.jpg"


@pytest.fixture(scope="module")
def function_image(engine) -> str:
    result = run("build", "--json", "--tag", "rcyc-function:test-cloud", *build_args())
    assert result.exit_code == 0, result.stderr
    return "rcyc-function:test-cloud"


def deploy_args(bucket, registry, function, *extra):
    return ["deploy", "--json", "--tag", "t1", "--bucket", bucket, "--function", function, "--repository", f"repo-{bucket}",
            "--registry", registry.host, "--registry-username", registry.username, *extra]


def careless_role(aws_via_front, name: str) -> None:
    """An existing role with an admin managed policy, an extra s3:* inline policy and a cross-account trust."""
    iam = aws_via_front.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [LAMBDA_TRUST_POLICY["Statement"][0], {
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    admin = iam.create_policy(PolicyName=f"{name}-admin", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=admin)
    iam.put_role_policy(RoleName=name, PolicyName="everything-s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))


def role_state(aws_via_front, name: str) -> tuple:
    iam = aws_via_front.client("iam")
    return (sorted(iam.list_role_policies(RoleName=name)["PolicyNames"]),
            sorted(p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]),
            iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"])


def test_a_role_granting_more_is_refused_by_name_before_anything_is_written(aws_via_front, bucket, registry, engine, monkeypatch):  # a real deploy asks the engine first
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    careless_role(aws_via_front, f"{function}-role")
    before = role_state(aws_via_front, f"{function}-role")
    for extra in ([], ["--dry-run"]):
        result = run(*deploy_args(bucket, registry, function, *extra))
        assert result.exit_code == ExitStatus.BAD_INPUT, result.stderr
        for named in (f"{function}-role-admin allows *", "everything-s3 allows s3:*", f"another account (arn:aws:iam::{OTHER}:root)"):
            assert named in result.stderr, (named, result.stderr)
        assert "--adopt-role" in result.stderr
    assert role_state(aws_via_front, f"{function}-role") == before
    assert not aws_via_front.client("lambda").list_functions()["Functions"] or function not in str(aws_via_front.client("lambda").list_functions())
    assert not aws_via_front.client("ecr").describe_repositories()["repositories"] or f"repo-{bucket}" not in str(
        aws_via_front.client("ecr").describe_repositories())


def test_adopt_role_narrows_it_to_rcyc_s_policy_and_says_what_it_removed(aws_via_front, bucket, registry, engine, function_image,
                                                                           monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    careless_role(aws_via_front, f"{function}-role")
    summary = ok(run(*deploy_args(bucket, registry, function, "--image", function_image, "--adopt-role")))
    narrowed = " | ".join(summary["role"]["narrowed"])
    assert "deleted the inline policy everything-s3" in narrowed and f"detached the managed policy {function}-role-admin" in narrowed
    assert "reset the trust policy" in narrowed and summary["role"]["left"] == []
    inline, managed, trust = role_state(aws_via_front, f"{function}-role")
    assert inline == [ROLE_POLICY_NAME] and managed == []
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}]
    code = run("doctor", "--security", f"{bucket}/{function}", "--json")
    findings = {f["check"]: f["severity"] for f in json.loads(code.stdout)["findings"]}
    assert findings["role: least privilege"] == findings["role: trust policy"] == findings["role: managed policies"] == "ok"


def test_a_second_function_cannot_take_over_a_trigger_and_a_stale_permission_is_removed(aws_via_front, bucket, registry, engine,
                                                                                         function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    first, second = f"a-{bucket}", f"b-{bucket}"
    ok(run(*deploy_args(bucket, registry, first, "--image", function_image, "--trigger", "incoming/")))
    s3, lam = aws_via_front.client("s3"), aws_via_front.client("lambda")
    before = s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    for prefix in ("incoming/", "incoming/sub/", "inc"):
        taken = run(*deploy_args(bucket, registry, second, "--image", function_image, "--trigger", prefix))
        assert taken.exit_code == ExitStatus.BAD_INPUT and "already sends its new objects to" in taken.stderr, taken.stderr
        assert first in taken.stderr
    assert s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"] == before
    assert second not in str(lam.list_functions())  # refused before the function was made
    # The notification removed behind rcyc's back: the first's next deploy removes its stale invoke permission.
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    again = ok(run(*deploy_args(bucket, registry, first, "--image", function_image)))
    assert any("stale" in w or "notification is gone" in w for w in again["warnings"]), again["warnings"]
    policy = json.loads(lam.get_policy(FunctionName=first)["Policy"]) if _has_policy(lam, first) else {"Statement": []}
    assert [s for s in policy["Statement"] if s.get("Principal", {}).get("Service") == "s3.amazonaws.com"] == []


def _has_policy(lam, function) -> bool:
    try:
        lam.get_policy(FunctionName=function)
        return True
    except lam.exceptions.ResourceNotFoundException:
        return False


def test_deploy_onto_a_zip_function_refuses_before_writing_the_role(aws_via_front, bucket, registry, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"zip-{bucket}"
    iam = aws_via_front.client("iam")
    role = iam.create_role(RoleName=f"{function}-role", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))["Role"]
    aws_via_front.client("lambda").create_function(FunctionName=function, Role=role["Arn"], Runtime="python3.12",
                                         Handler="app.handler", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18})
    result = run(*deploy_args(bucket, registry, function, "--dry-run"))
    assert result.exit_code == ExitStatus.AWS and "Zip function" in result.stderr, result.stderr
    result = run(*deploy_args(bucket, registry, function))
    assert result.exit_code in (ExitStatus.AWS, ExitStatus.MISSING_PREREQ), result.stderr
    assert iam.list_role_policies(RoleName=f"{function}-role")["PolicyNames"] == []  # nothing written


@pytest.fixture
def emulator(moto_server, bucket, rie_path):
    box = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url, "RCYC_MODEL_BUCKET": bucket,
                                        "RCYC_MODEL_REFRESH_SECONDS": "0"}, timeout=60)
    box.start()
    try:
        yield box
    finally:
        box.stop()


def test_a_smoke_key_the_function_answers_with_an_error_fails_the_deploy(aws_via_front, fault_front, bucket, registry, engine,
                                                                       function_image, emulator, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    fault_front.route(emulator.endpoint_url, "lambda", r"/invocations$")
    function = f"fn-{bucket}"
    good = ok(run(*deploy_args(bucket, registry, function, "--image", function_image, "--smoke", "images/soda_cans_0.jpg")))
    assert good["smoke"]["response"]["results"][0]["label"]
    bad = run(*deploy_args(bucket, registry, function, "--image", function_image, "--smoke", "images/nope.jpg"))
    assert bad.exit_code == ExitStatus.FUNCTION_FAILED, bad.stderr
    assert "smoke test failed" in bad.stderr and "NoSuchKey" in bad.stderr
    assert json.loads(bad.stdout)["smoke"]["error"]["kind"] == "SmokeTestFailed"
