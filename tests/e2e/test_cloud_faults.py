"""Every cloud command against every failure class AWS (or what stands in front of it) can answer with:
a fault endpoint on 127.0.0.1 in front of moto's server answers expired tokens, 403, an HTML 404, throttling,
an HTML 500, a connection reset and an answer that never comes in time. Each command exits with the
documented status (5: AWS refused or could not be reached) and prints one error: line and one hint: line,
never a traceback or an HTML page. The credential chain's own failures (credential_process, SSO, an
expired refresh) reach the same boundary."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from rcyc_cli.exit_status import ExitStatus
from rcyc_cli.main import cli
from tests.conftest import IMAGES, MODELS
from tests.e2e.cloud_fixtures import point_aws_at
from tests.e2e.fault_endpoint import FAULTS, FaultEndpoint

pytestmark = pytest.mark.e2e
BUCKET = "rcyc-faults"
SODA = IMAGES / "soda_cans" / "soda_cans_0.jpg"

COMMANDS = {
    "upload-model": ["upload-model", "--bucket", BUCKET, MODELS["softmax"]],
    "upload-image": ["upload-image", "--bucket", BUCKET, SODA],
    "models list": ["models", "list", "--bucket", BUCKET],
    "models promote": ["models", "promote", "--bucket", BUCKET, "m", "1"],
    "invoke": ["invoke", "--bucket", BUCKET, "images/soda_cans_0.jpg"],
    "classify": ["classify", f"s3://{BUCKET}/images/"],
    "deploy --dry-run": ["deploy", "--tag", "t1", "--bucket", BUCKET, "--dry-run"],
    "doctor --security": ["doctor", "--security", f"{BUCKET}/rcyc-function"],
}
# What the hint (or the error) must say for each class, so the user knows what to do.
SAYS = {
    "expired": ("expired",),
    "403": ("permission", "s3:ListBucket", "lack", "allow s3:"),
    "404-html": ("endpoint", "does not exist"),
    "429": ("throttling",),
    "500-html": ("failed on its side",),
    "reset": ("run the command again",),
    "slow": ("rcyc_aws_timeout",),
}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def faults(moto_server):
    endpoint = FaultEndpoint(moto_server.endpoint_url, slow_seconds=2.5).start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def aws_at_faults(faults, monkeypatch, tmp_path):
    """Every AWS endpoint at the fault endpoint (which forwards to moto unless told otherwise)."""
    point_aws_at(monkeypatch, faults.url, tmp_path)
    monkeypatch.setenv("RCYC_AWS_TIMEOUT", "1")
    faults.clear()
    yield faults
    faults.clear()


def assert_one_line(result, says: tuple[str, ...] = ()) -> None:
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(errors) == 1 and len(hints) == 1, result.stderr
    assert lines[-2:] == errors + hints, result.stderr  # nothing after them (no page, no traceback)
    text = (errors[0] + " " + hints[0]).lower()
    assert "traceback" not in text and "<html" not in text and "<!doctype" not in text
    if says:
        assert any(word.lower() in text for word in says), result.stderr


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_cloud_command_fails_in_one_line_for_every_failure_class(aws_at_faults, fault, command):
    aws_at_faults.fault(fault)
    result = run(*COMMANDS[command])
    assert result.exit_code == ExitStatus.AWS, (result.exit_code, result.stderr)
    assert_one_line(result, SAYS[fault])
    assert sum(aws_at_faults.faulted.values()) >= 1  # the command did reach the endpoint
    if fault in ("429", "500-html", "reset", "slow"):
        # retried by the one policy of its client: at most 3 attempts of one call
        assert max(aws_at_faults.faulted.values()) <= 3, aws_at_faults.faulted


@pytest.fixture
def function_and_images(aws_at_faults):
    """A function moto knows (image package; moto cannot run it, the fault endpoint answers its invokes),
    a model and one image in the bucket."""
    import boto3

    aws_at_faults.clear()
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="rcyc-faults-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.create_function(FunctionName="rcyc-faults", Role=role, PackageType="Image",
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/rcyc:1"},
                        Environment={"Variables": {"RCYC_MODEL_BUCKET": BUCKET}})
    assert run("upload-model", "--bucket", BUCKET, MODELS["softmax"]).exit_code == 0
    assert run("upload-image", "--bucket", BUCKET, SODA).exit_code == 0
    yield "rcyc-faults"
    lam.delete_function(FunctionName="rcyc-faults")
    iam.delete_role(RoleName="rcyc-faults-role")


@pytest.mark.parametrize("fault", ["500-html", "429", "reset"])
def test_classify_tries_an_event_a_bounded_number_of_times_in_all(aws_at_faults, function_and_images, fault):
    """One retry policy: botocore makes one attempt per call and classify tries an event at most 3 times
    (not 3 tries x botocore's retries); the event's records end up in errors with the cause."""
    from rcyc_cli.classify.target import ATTEMPTS

    aws_at_faults.clear()
    aws_at_faults.fault(fault, "lambda", r"/invocations$")
    result = run("classify", "--json", "--function", function_and_images, f"s3://{BUCKET}/images/")
    assert result.exit_code == ExitStatus.RECORD_ERRORS, result.stderr
    invokes = sum(n for (service, op), n in aws_at_faults.requests.items() if op.endswith("/invocations"))
    assert invokes == ATTEMPTS == 3
    summary = json.loads(result.stdout)
    assert summary["invocations"] == 0 and sum(summary["errors"].values()) == 1


def credential_profile(tmp_path, monkeypatch, body: str) -> None:
    config = tmp_path / "aws-config"
    config.write_text(textwrap.dedent(body))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "broken")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def process_printing(tmp_path, payload: dict | None, code: int = 0) -> str:
    script = tmp_path / "creds.py"
    script.write_text(f"import json, sys\nprint(json.dumps({payload!r}))\nsys.exit({code})\n" if payload
                      else f"import sys\nsys.stderr.write('no login here\\n')\nsys.exit({code})\n")
    return f"{sys.executable} {script}"


CHAIN = {
    # credential_process that hands back credentials already expired: botocore's "refreshed credentials
    # are still expired" RuntimeError
    "expired refresh": (lambda tmp: f"""
        [profile broken]
        region = us-east-1
        credential_process = {process_printing(tmp, {"Version": 1, "AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "x",
                                                      "SessionToken": "y", "Expiration": "2020-01-01T00:00:00Z"})}
        """, "still expired"),
    # credential_process that fails: CredentialRetrievalError
    "credential_process fails": (lambda tmp: f"""
        [profile broken]
        region = us-east-1
        credential_process = {process_printing(tmp, None, 1)}
        """, "credential"),
    # an SSO profile never logged in: the token cache is empty (SSOTokenLoadError / TokenRetrievalError)
    "sso not logged in": (lambda tmp: """
        [profile broken]
        region = us-east-1
        sso_session = corp
        sso_account_id = 123456789012
        sso_role_name = Dev
        [sso-session corp]
        sso_region = us-east-1
        sso_start_url = https://example.invalid/start
        sso_registration_scopes = sso:account:access
        """, "sso login"),
}


@pytest.mark.parametrize("chain", list(CHAIN))
@pytest.mark.parametrize("command", ["upload-model", "models list", "models promote", "invoke", "classify",
                                     "deploy --dry-run", "doctor --security"])
def test_the_credential_chains_own_failures_are_one_line(aws_at_faults, tmp_path, monkeypatch, chain, command):
    body, says = CHAIN[chain]
    credential_profile(tmp_path, monkeypatch, body(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no SSO token cache of the user's
    result = run(*COMMANDS[command])
    assert result.exit_code == ExitStatus.AWS, (result.exit_code, result.stderr)
    assert_one_line(result, (says,))
    assert sum(aws_at_faults.requests.values()) == 0  # nothing was sent without credentials
