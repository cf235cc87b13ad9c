"""`rcyc deploy` end to end: moto's HTTP server (S3, IAM, STS, ECR API, Lambda API), the CNCF registry with
htpasswd basic auth, and the Docker engine. Create, update, converge, trigger, architecture, smoke test."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request

import pytest

from rcyc_cli.cloud import functions
from rcyc_cli.cloud import registry as cloud_registry
from rcyc_cli.exit_status import ExitStatus, for_error
from rcyc_cli.reporting import Reporter
from rcyc_core.errors import AwsError
from tests.cli import run
from tests.conftest import MODELS, build_args, need
from tests.e2e.cloud_checks import audit_json, ok
from tests.e2e.cloud_fixtures import REGISTRY_BINARY, LocalRegistry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def function_image(engine) -> str:
    """The function image (rcyc build; a cache hit when nothing changed), tagged for these tests."""
    result = run("build", "--json", "--tag", "rcyc-function:test-cloud", *build_args())
    assert result.exit_code == 0, result.stderr
    return "rcyc-function:test-cloud"


def derived_image(engine, base_tag: str, label: str) -> str:
    """A different image on top of the function image: one label changed, nothing rebuilt."""
    base = engine.images.get(base_tag).id
    dockerfile = f"FROM {base}\nLABEL rcyc.test={label}\n".encode()
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile), tag=f"rcyc-function:test-{label}", network_mode="host", rm=True)
    return image.id


def registry_manifest(registry: LocalRegistry, repository: str, reference: str) -> tuple[int, dict | None, str | None]:
    request = urllib.request.Request(f"http://{registry.host}/v2/{repository}/manifests/{reference}", headers={
        "Authorization": registry.basic_auth(), "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read()), reply.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        return exc.code, None, None


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_deploy_creates_then_updates_then_changes_nothing(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["one-vs-rest"]))
    function, repository = f"fn-{bucket}", f"repo-{bucket}"
    common = ["--bucket", bucket, "--function", function, "--repository", repository, "--registry", registry.host,
              "--registry-username", registry.username]

    # The plan first: nothing exists, nothing is created.
    plan = ok(run("deploy", "--json", "--dry-run", "--tag", "v1", *common))
    assert plan["dry_run"] is True
    assert (plan["repository"]["action"], plan["image"]["action"], plan["role"]["action"], plan["function"]["action"]) == \
        ("create", "push", "create", "create")
    assert aws_on_moto.client("ecr").describe_repositories()["repositories"] == [] or repository not in \
        [r["repositoryName"] for r in aws_on_moto.client("ecr").describe_repositories()["repositories"]]
    assert function not in [f["FunctionName"] for f in aws_on_moto.client("lambda").list_functions()["Functions"]]
    assert registry_manifest(registry, repository, "v1")[0] == 404

    # 1. create: the image is built (the function image, a cache hit when unchanged) and pushed.
    created = ok(run("deploy", "--json", "--tag", "v1", *common, *build_args()))
    image = created["image"]
    assert image["action"] == "pushed" and image["layers_pushed"] + image["layers_existing"] > 0
    digest1 = image["digest"]
    repo = aws_on_moto.client("ecr").describe_repositories(repositoryNames=[repository])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert image["uri"] == f"{repo['repositoryUri']}@{digest1}"
    status, manifest, served = registry_manifest(registry, repository, "v1")
    assert status == 200 and served == digest1 and manifest["config"]["digest"] == image["image_id"]
    fn = created["function"]
    assert fn["action"] == "created" and fn["state"] == "Active" and fn["version"] == "1"
    lam = aws_on_moto.client("lambda")
    config = lam.get_function(FunctionName=function)
    assert config["Code"]["ImageUri"] == image["uri"]
    c = config["Configuration"]
    assert (c["PackageType"], c["MemorySize"], c["Timeout"]) == ("Image", 1024, 180)
    assert c["Environment"]["Variables"] == {"RCYC_MODEL_BUCKET": bucket, "RCYC_MODEL_POINTER": "models/current.json",
                                             "RCYC_MODEL_REFRESH_SECONDS": "30"}
    assert c["Role"] == created["role"]["arn"]

    # The pushed image comes back from the registry by digest, as the same image.
    engine.images.remove(f"{registry.host}/{repository}:v1")
    pulled = engine.images.pull(f"{registry.host}/{repository}@{digest1}",
                                auth_config={"username": registry.username, "password": registry.password})
    assert pulled.id == image["image_id"]
    assert f"{registry.host}/{repository}@{digest1}" in pulled.attrs["RepoDigests"]

    # 2. update with a new tag naming a different image.
    new_id = derived_image(engine, function_image, bucket)
    updated = ok(run("deploy", "--json", "--tag", "v2", "--image", new_id, *common))
    digest2 = updated["image"]["digest"]
    assert updated["image"]["action"] == "pushed" and digest2 != digest1
    assert updated["image"]["layers_existing"] > 0  # the shared layers are not sent again
    assert updated["function"]["action"] == "updated" and updated["function"]["changes"] == ["code"]
    assert updated["function"]["version"] == "2"
    assert lam.get_function(FunctionName=function)["Code"]["ImageUri"] == f"{repo['repositoryUri']}@{digest2}"
    assert registry_manifest(registry, repository, "v1")[2] == digest1  # the old tag is untouched

    # 3. the same tag again: no push, no change.
    before = lam.get_function(FunctionName=function)["Configuration"]
    again = ok(run("deploy", "--json", "--tag", "v2", "--image", new_id, *common))
    assert again["image"]["action"] == "already pushed" and again["image"]["digest"] == digest2
    assert "layers_pushed" in again["image"] and again["image"]["layers_pushed"] == 0
    assert (again["role"]["action"], again["function"]["action"], again["function"]["version"]) == ("unchanged", "unchanged", "2")
    after = lam.get_function(FunctionName=function)["Configuration"]
    assert after["LastModified"] == before["LastModified"] and after["CodeSha256"] == before["CodeSha256"]
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=function)["Versions"]] == ["$LATEST", "1", "2"]

    plan = ok(run("deploy", "--json", "--dry-run", "--tag", "v2", "--image", new_id, *common))
    assert (plan["image"]["action"], plan["role"]["action"], plan["function"]["action"]) == \
        ("nothing (already pushed)", "unchanged", "nothing")
    quiet = run("deploy", "--json", "--tag", "v2", "--image", new_id, *common)
    assert quiet.exit_code == 0 and quiet.stderr == ""  # --json: nothing but the JSON, no progress

    # A tag is never moved to another image silently.
    moved = run("deploy", "--tag", "v1", "--image", new_id, *common)
    assert moved.exit_code == ExitStatus.AWS and "already names a different image" in moved.stderr and "--force-tag" in moved.stderr
    assert registry_manifest(registry, repository, "v1")[2] == digest1

    # Credentials never appear anywhere.
    for result in (created, updated, again):
        assert registry.password not in json.dumps(result)
    assert registry.password not in moved.stdout + moved.stderr


def test_deploy_role_is_least_privilege(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    ok(run("deploy", "--json", "--tag", "lp", "--image", function_image, "--bucket", bucket, "--function", function,
           "--registry", registry.host, "--registry-username", registry.username))
    iam = aws_on_moto.client("iam")
    role = iam.get_role(RoleName=f"{function}-role")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == [functions.ROLE_POLICY_NAME]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    grants = {(s["Effect"], a, r) for s in document["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
              for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
    assert grants == {
        ("Allow", "s3:GetObject", f"arn:aws:s3:::{bucket}/models/*"),
        ("Allow", "s3:GetObject", f"arn:aws:s3:::{bucket}/images/*"),
        ("Allow", "logs:CreateLogGroup", "*"), ("Allow", "logs:CreateLogStream", "*"), ("Allow", "logs:PutLogEvents", "*"),
    }


def test_deploy_with_the_ecr_token_against_a_basic_auth_registry_is_a_refused_login(aws_on_moto, bucket, registry, engine, function_image):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    token = aws_on_moto.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    result = run("deploy", "--tag", "x", "--image", function_image, "--bucket", bucket, "--function", f"fn-{bucket}",
                 "--registry", registry.host)
    assert result.exit_code == ExitStatus.AWS
    assert "refused the login" in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr
    import base64

    secret = base64.b64decode(token).decode().partition(":")[2]
    assert token not in result.stdout + result.stderr and secret not in result.stdout + result.stderr


def test_deploy_trigger_wires_s3_notifications_and_a_results_prefix(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    common = ["--image", function_image, "--bucket", bucket, "--function", function, "--registry", registry.host,
              "--registry-username", registry.username]
    overlapping = run("deploy", "--tag", "tr", *common, "--trigger", "incoming/", "--results-prefix", "incoming/results/")
    assert overlapping.exit_code == ExitStatus.BAD_INPUT and "overlap" in overlapping.stderr
    summary = ok(run("deploy", "--json", "--tag", "tr", *common, "--trigger", "incoming/"))
    assert summary["trigger"]["action"] == "configured"
    arn = summary["function"]["arn"]
    rules = aws_on_moto.client("s3").get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert [(r["LambdaFunctionArn"], r["Events"], [(f["Name"].lower(), f["Value"]) for f in r["Filter"]["Key"]["FilterRules"]])
            for r in rules] == [(arn, ["s3:ObjectCreated:*"], [("prefix", "incoming/")])]
    [statement] = json.loads(aws_on_moto.client("lambda").get_policy(FunctionName=function)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{bucket}"
    env = aws_on_moto.client("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert env["RCYC_RESULTS_PREFIX"] == "results/"
    document = aws_on_moto.client("iam").get_role_policy(RoleName=f"{function}-role", PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    writes = [s for s in document["Statement"] if s["Action"] == "s3:PutObject"]
    assert writes == [{"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/results/*"}]
    reads = next(s for s in document["Statement"] if s["Action"] == "s3:GetObject")["Resource"]
    assert f"arn:aws:s3:::{bucket}/incoming/*" in reads
    # Deploying the same again changes nothing, the trigger included.
    again = ok(run("deploy", "--json", "--tag", "tr", *common, "--trigger", "incoming/"))
    assert again["function"]["action"] == "unchanged" and again["role"]["action"] == "unchanged"
    assert len(aws_on_moto.client("s3").get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]) == 1


def test_deploy_to_a_missing_bucket_says_to_upload_a_model_first(aws_on_moto, bucket):
    result = run("deploy", "--tag", "v1", "--bucket", bucket, "--dry-run")
    assert result.exit_code == ExitStatus.AWS and f"the bucket {bucket} does not exist" in result.stderr
    assert "rcyc upload-model" in result.stderr


def test_an_unreachable_registry_is_one_line_with_a_hint(aws_on_moto, bucket, engine, function_image, monkeypatch):
    from rcyc_cli.local.emulator.ports import free_port

    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", "not-a-real-password")
    result = run("deploy", "--tag", "v1", "--image", function_image, "--bucket", bucket, "--function", f"fn-{bucket}",
                 "--registry", f"127.0.0.1:{free_port()}", "--registry-username", "rcyc")
    assert result.exit_code == ExitStatus.AWS and "cannot reach the registry" in result.stderr and "hint: " in result.stderr
    assert "not-a-real-password" not in result.stdout + result.stderr
    assert f"fn-{bucket}" not in [f["FunctionName"] for f in aws_on_moto.client("lambda").list_functions()["Functions"]]


def test_a_failed_function_update_shows_the_reason_lambda_gives():
    from botocore.exceptions import WaiterError

    class FailingLambda:
        def get_waiter(self, name):
            class Waiter:
                def wait(self, **kwargs):
                    raise WaiterError(name=name, reason="terminal state", last_response={})
            return Waiter()

        def get_function_configuration(self, FunctionName):
            return {"LastUpdateStatus": "Failed", "LastUpdateStatusReasonCode": "ImageAccessDenied",
                    "LastUpdateStatusReason": "Lambda does not have permission to access the ECR image."}

    with pytest.raises(AwsError) as raised:
        functions._wait(FailingLambda(), "function_updated_v2", "fn", "updating fn")
    assert raised.value.kind == "FunctionUpdateFailed" and for_error(raised.value) == ExitStatus.AWS
    assert "ImageAccessDenied: Lambda does not have permission to access the ECR image." in raised.value.message


def test_human_deploy_plan_renders(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    result = run("deploy", "--dry-run", "--tag", "h1", "--image", function_image, "--bucket", bucket,
                 "--function", f"fn-{bucket}", "--registry", registry.host, "--registry-username", registry.username)
    assert result.exit_code == 0, result.stderr
    assert "plan (dry run: nothing changed)" in result.stdout and "create" in result.stdout and "push" in result.stdout
    assert registry.password not in result.stdout + result.stderr


@pytest.mark.slow  # the engine retries the dead registry with back-off: about a minute
def test_a_push_cut_off_midway_completes_on_rerun(engine, function_image):
    """The registry dies while layers are uploading: a clear error; once it is back, the same push completes
    (layers it already stored are not sent again) and the image pulls back by digest."""
    import threading

    need(os.path.exists(REGISTRY_BINARY), "the docker-registry binary")
    server = LocalRegistry().start()
    try:
        registry = cloud_registry.Registry(server.host, server.username, server.password, source="basic")
        image_id = engine.images.get(function_image).id
        cut = threading.Event()

        def on_layer(layer, status, current, total):
            if status == "Pushing" and current and not cut.is_set():
                cut.set()
                server.kill()

        with pytest.raises(cloud_registry.RegistryError) as caught:
            cloud_registry.push(engine, image_id, registry, "cutoff", "v1", report=Reporter(layer=on_layer))
        assert cut.is_set()
        assert server.password not in caught.value.message and caught.value.hint

        server.restart()
        result = cloud_registry.push(engine, image_id, registry, "cutoff", "v1")
        assert result.pushed and result.digest.startswith("sha256:")
        pulled = engine.images.pull(f"{server.host}/cutoff@{result.digest}",
                                    auth_config={"username": server.username, "password": server.password})
        assert pulled.id == image_id
    finally:
        server.stop()


def role_document(aws_on_moto, function: str) -> dict:
    document = aws_on_moto.client("iam").get_role_policy(RoleName=f"{function}-role", PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def trigger_state(aws_on_moto, bucket: str, function: str) -> dict:
    """The four parts of a trigger, read back from moto: notification, invoke permission, role read, results env."""
    rules = aws_on_moto.client("s3").get_bucket_notification_configuration(Bucket=bucket).get("LambdaFunctionConfigurations", [])
    lam = aws_on_moto.client("lambda")
    try:
        statements = json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
    except lam.exceptions.ResourceNotFoundException:
        statements = []
    reads = next(s for s in role_document(aws_on_moto, function)["Statement"] if s["Action"] == "s3:GetObject")["Resource"]
    writes = [s for s in role_document(aws_on_moto, function)["Statement"] if s["Action"] == "s3:PutObject"]
    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    return {"prefixes": [r["Filter"]["Key"]["FilterRules"][0]["Value"] for r in rules],
            "permissions": [s["Sid"] for s in statements if s["Sid"].startswith("rcyc-s3-trigger-")],
            "reads": sorted(r.rsplit("/", 1)[0].split(":::", 1)[1].split("/", 1)[1] for r in reads),
            "writes": len(writes), "results": env.get("RCYC_RESULTS_PREFIX")}


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_the_trigger_is_kept_whole_moved_whole_or_removed_whole(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    common = ["--tag", "tw", "--image", function_image, "--bucket", bucket, "--function", function, "--registry", registry.host,
              "--registry-username", registry.username]
    whole = {"prefixes": ["incoming/"], "reads": ["images", "incoming", "models"], "writes": 1, "results": "results/"}
    ok(run("deploy", "--json", *common, "--trigger", "incoming/"))
    state = trigger_state(aws_on_moto, bucket, function)
    assert len(state.pop("permissions")) == 1 and state == whole

    # A later deploy without --trigger keeps it whole, and says so.
    kept = ok(run("deploy", "--json", *common))
    assert kept["trigger"]["action"] == "kept" and any("--no-trigger" in w for w in kept["warnings"])
    assert (kept["role"]["action"], kept["function"]["action"]) == ("unchanged", "unchanged")
    state = trigger_state(aws_on_moto, bucket, function)
    assert len(state.pop("permissions")) == 1 and state == whole

    # Another prefix replaces it whole: one rule, one permission.
    moved = ok(run("deploy", "--json", *common, "--trigger", "uploads/"))
    assert moved["trigger"]["action"] == "configured"
    state = trigger_state(aws_on_moto, bucket, function)
    assert len(state.pop("permissions")) == 1
    assert state == {**whole, "prefixes": ["uploads/"], "reads": ["images", "models", "uploads"]}

    # --no-trigger removes every part of it.
    plan = ok(run("deploy", "--json", "--dry-run", *common, "--no-trigger"))
    assert plan["trigger"]["action"] == "remove"
    removed = ok(run("deploy", "--json", *common, "--no-trigger"))
    assert removed["trigger"]["action"] == "removed"
    assert trigger_state(aws_on_moto, bucket, function) == {"prefixes": [], "permissions": [], "reads": ["images", "models"],
                                                    "writes": 0, "results": None}
    contradiction = run("deploy", *common, "--trigger", "a/", "--no-trigger")
    assert contradiction.exit_code == ExitStatus.BAD_INPUT

    # What rcyc created passes the audit on this local endpoint (TLS-only: not applicable here).
    code, findings = audit_json(f"{bucket}/{function}")
    assert code == 0, findings
    # (and a note, not a failure: this bucket has no Object Lock)
    assert {f["severity"] for f in findings.values()} == {"ok", "not applicable", "low"}
    assert [name for name, f in findings.items() if f["severity"] == "low"] == ["models lock-protected"]


def arm64_image(engine) -> str:
    """A tiny image whose config says linux/arm64 (docker load of a hand-made archive: this engine cannot build
    for arm64). Never run: only pushed and deployed."""
    import tarfile

    def tar_of(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    layer = tar_of({"README": b"an arm64 stand-in for rcyc's architecture tests\n"})
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {"Labels": {"rcyc.test": "arm64"}},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    name = hashlib.sha256(config).hexdigest() + ".json"
    archive = tar_of({name: config, "layer/layer.tar": layer, "manifest.json": json.dumps(
        [{"Config": name, "RepoTags": ["rcyc-function:test-arm64"], "Layers": ["layer/layer.tar"]}]).encode()})
    [image] = engine.images.load(archive)
    assert image.attrs["Architecture"] == "arm64"
    return image.id


@pytest.fixture
def moto_lambda_takes_architectures(monkeypatch):
    """moto's UpdateFunctionCode ignores Architectures (real Lambda sets it there): teach the in-process moto
    server to keep it, so what rcyc reads back is what it asked for."""
    from moto.awslambda import models

    real = models.LambdaFunction.update_function_code

    def update(self, spec):
        if spec.get("Architectures"):
            self.architectures = spec["Architectures"]
        return real(self, spec)

    monkeypatch.setattr(models.LambdaFunction, "update_function_code", update)


def test_the_architecture_is_set_on_update_and_checked_against_the_image(aws_on_moto, bucket, registry, engine, function_image,
                                                                        monkeypatch, moto_lambda_takes_architectures):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    common = ["--bucket", bucket, "--function", function, "--registry", registry.host, "--registry-username", registry.username]
    lam = aws_on_moto.client("lambda")

    # An amd64 image with --platform linux/arm64: refused before anything is created.
    mismatch = run("deploy", "--tag", "a1", "--image", function_image, "--platform", "linux/arm64", *common)
    assert mismatch.exit_code == ExitStatus.BAD_INPUT and "arm64" in mismatch.stderr and "Traceback" not in mismatch.stderr
    assert function not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]

    created = ok(run("deploy", "--json", "--tag", "a1", "--image", function_image, *common))
    assert created["image"]["architecture"] == "x86_64"
    assert lam.get_function_configuration(FunctionName=function)["Architectures"] == ["x86_64"]

    # An arm64 image onto the x86_64 function: the architecture changes with the code and is read back.
    arm = arm64_image(engine)
    updated = ok(run("deploy", "--json", "--tag", "a2", "--image", arm, "--platform", "linux/arm64", *common))
    assert updated["function"]["action"] == "updated" and "architecture: x86_64 -> arm64" in updated["function"]["changes"]
    assert updated["function"]["architecture"] == "arm64"
    assert lam.get_function_configuration(FunctionName=function)["Architectures"] == ["arm64"]
    # Without --platform, the image's architecture is taken: the same image again changes nothing.
    again = ok(run("deploy", "--json", "--tag", "a2", "--image", arm, *common))
    assert again["function"]["action"] == "unchanged"


def test_a_failed_smoke_test_still_prints_the_deploy_summary(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    """moto cannot invoke image functions, so the invoke itself is replaced by one that fails as Lambda would."""
    from rcyc_cli.cloud import deploy as cloud_deploy
    from rcyc_core.errors import FunctionError

    def failing_invoke(keys, bucket_, function_, region=None):
        raise FunctionError("the function failed: Unhandled", kind="FunctionError")

    monkeypatch.setattr(cloud_deploy, "invoke", failing_invoke)
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    common = ["--tag", "sm", "--image", function_image, "--bucket", bucket, "--function", f"fn-{bucket}",
              "--registry", registry.host, "--registry-username", registry.username, "--smoke", "images/x.jpg"]
    human = run("deploy", *common)
    assert human.exit_code == ExitStatus.FUNCTION_FAILED
    assert "deployed" in human.stdout and "created" in human.stdout and "the function failed" in human.stderr
    digest = aws_on_moto.client("lambda").get_function(FunctionName=f"fn-{bucket}")["Code"]["ImageUri"].rsplit("@", 1)[1]
    assert f"digest: {digest}" in human.stdout  # whole, never cut at 80 columns
    assert any(line.startswith("image uri: ") and line.endswith(digest) for line in human.stdout.splitlines())
    machine = run("deploy", "--json", *common)
    assert machine.exit_code == ExitStatus.FUNCTION_FAILED
    summary = json.loads(machine.stdout)
    assert summary["function"]["action"] == "unchanged" and summary["smoke"]["error"]["kind"] == "FunctionError"


def test_a_dry_run_needs_no_docker_engine(aws_on_moto, bucket, registry, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{bucket}-no-engine.sock")
    common = ["--tag", "ne", "--bucket", bucket, "--function", f"fn-{bucket}", "--registry", registry.host,
              "--registry-username", registry.username]
    plan = ok(run("deploy", "--json", "--dry-run", *common))
    assert plan["image"]["image_id"] is None and plan["image"]["action"] == "push"
    assert plan["function"]["action"] == "create" and any("Docker engine" in w for w in plan["warnings"])
    real = run("deploy", *common)
    assert real.exit_code == ExitStatus.MISSING_PREREQ and "Docker engine" in real.stderr


class HeaderRecorder:
    """A registry stand-in on 127.0.0.1 that records every request's Authorization header and answers 401."""

    def __init__(self):
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="rcyc-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_ecr_token_goes_only_to_ecr(aws_on_moto, bucket):
    import base64

    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    token = aws_on_moto.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    secret = base64.b64decode(token).decode().partition(":")[2]
    recorder = HeaderRecorder()
    try:
        result = run("deploy", "--dry-run", "--tag", "t1", "--bucket", bucket, "--function", f"fn-{bucket}", "--registry", recorder.host)
    finally:
        recorder.stop()
    assert recorder.seen, "the registry was asked"
    assert all(header is None for header in recorder.seen), recorder.seen  # no login sent to a non-ECR registry
    assert result.exit_code == ExitStatus.AWS and "refused the login" in result.stderr and "--registry-username" in result.stderr
    assert token not in result.stdout + result.stderr and secret not in result.stdout + result.stderr


def test_a_tag_naming_a_multi_platform_index_is_not_deployed(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):
    """Lambda takes a single-platform image manifest: an index under the tag is refused, in the plan and by the check."""
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    repository = f"repo-{bucket}"
    common = ["--bucket", bucket, "--function", f"fn-{bucket}", "--repository", repository, "--registry", registry.host,
              "--registry-username", registry.username]
    pushed = ok(run("deploy", "--json", "--tag", "single", "--image", function_image, *common))
    status, manifest, digest = registry_manifest(registry, repository, "single")
    assert status == 200 and pushed["image"]["digest"] == digest
    body = json.dumps(manifest).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": manifest["mediaType"], "digest": digest, "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    request = urllib.request.Request(f"http://{registry.host}/v2/{repository}/manifests/multi", data=index, method="PUT", headers={
        "Authorization": registry.basic_auth(), "Content-Type": "application/vnd.oci.image.index.v1+json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as reply:
        assert reply.status == 201
    login = cloud_registry.Registry(registry.host, registry.username, registry.password, source="basic")
    remote = cloud_registry.remote_image(login, repository, "multi")
    assert remote.media_type == "application/vnd.oci.image.index.v1+json" and not remote.lambda_ready
    with pytest.raises(cloud_registry.RegistryError) as refused:
        cloud_registry.require_lambda_manifest(remote, "multi")
    assert refused.value.kind == "UnsupportedManifest"
    assert cloud_registry.remote_image(login, repository, "single").lambda_ready
    refused_plan = run("deploy", "--json", "--dry-run", "--tag", "multi", "--image", function_image, *common)
    assert refused_plan.exit_code == ExitStatus.BAD_INPUT  # a plan that refuses fails as the deploy would (issue 21)
    plan = json.loads(refused_plan.stdout)
    assert plan["image"]["action"].startswith("refuse") and "index" in plan["image"]["action"]


def test_deploy_against_a_local_ecr_without_registry_says_to_pass_one(aws_on_moto, bucket, engine):  # a real deploy asks the engine first
    """moto's ECR names a registry host that exists nowhere: deploy (even --dry-run) says so before any build,
    with the option that fixes it, instead of failing to resolve that host."""
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    for extra in (["--dry-run"], []):
        result = run("deploy", "--tag", "v3", "--bucket", bucket, "--function", f"fn-{bucket}", *extra)
        assert result.exit_code == ExitStatus.BAD_INPUT, result.output
        assert "local endpoint" in result.stderr and "--registry HOST:PORT" in result.stderr
        assert "Traceback" not in result.stderr
