"""The cloud commands end to end against real local stand-ins: moto's HTTP server (S3, IAM, STS, ECR API,
Lambda API), the CNCF registry with htpasswd basic auth (image pushes and pulls), the Docker engine, and
the real Lambda emulator running the function (moto cannot invoke image functions; `rcyc invoke
--endpoint-url` reaches the emulator the way it reaches Lambda). Everything on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from rcyc_cli.cloud import aws as cloud_aws, buckets, functions, registry as cloud_registry, store
from rcyc_cli.reporting import Reporter
from rcyc_core.errors import AwsError
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_cli.main import cli
from rcyc_cli.exit_status import ExitStatus, for_error
from rcyc_core.manifest import Manifest
from tests.e2e.cloud_fixtures import REGISTRY_BINARY, LocalRegistry, MotoServer, point_aws_at
from tests.conftest import IMAGES, MODELS, bad_images, build_args, need

pytestmark = pytest.mark.e2e
SODA = IMAGES / "soda_cans" / "soda_cans_0.jpg"
BOX = IMAGES / "boxes" / "boxes_0.jpg"


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)


def ok(result) -> dict:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-3000:]}"
    return json.loads(result.stdout)


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def moto_server():
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.running


@pytest.fixture
def aws(moto_server, monkeypatch, tmp_path):
    """boto3 pointed at moto with throwaway credentials; nothing of the user's AWS configuration."""
    point_aws_at(monkeypatch, moto_server.endpoint_url, tmp_path)
    return cloud_aws.Aws()


@pytest.fixture
def bucket(request) -> str:
    """A bucket name of this test's own (moto's state is shared by the module)."""
    return "rcyc-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def registry():
    need(os.path.exists(REGISTRY_BINARY), "the docker-registry binary (.ci/docker-up.sh installs it)")
    server = LocalRegistry().start()
    try:
        yield server
    finally:
        server.stop()
        assert server.process.poll() is not None  # stopped by its own handle


@pytest.fixture(scope="module")
def function_image(engine) -> str:
    """The function image (rcyc build; a cache hit when nothing changed), tagged for these tests."""
    result = run("build", "--json", "--tag", "rcyc-function:test-cloud", *build_args())
    assert result.exit_code == 0, result.stderr
    return "rcyc-function:test-cloud"


def s3_objects(aws, bucket: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def pointer(aws, bucket: str) -> dict:
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key="models/current.json")["Body"].read())


# --------------------------------------------------------------------------------------------------
# bucket safety


def test_a_bucket_rcyc_creates_is_private_encrypted_versioned_and_tls_only(aws, bucket):
    summary = ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    assert summary["bucket_created"] is True
    s3 = aws.client("s3")
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
def test_an_existing_public_bucket_is_refused_and_nothing_is_uploaded(aws, bucket, how):
    s3 = aws.client("s3")
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
    assert s3_objects(aws, bucket) == {}


def test_an_existing_private_bucket_is_used_as_it_is(aws, bucket):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(buckets.BLOCK_ALL))
    summary = ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    assert summary["bucket_created"] is False
    assert list(s3_objects(aws, bucket)) == ["images/soda_cans_0.jpg"]


# --------------------------------------------------------------------------------------------------
# models


def check_uploaded(aws, bucket: str, summary: dict) -> Manifest:
    """Every file the uploaded manifest names is in the bucket with the sha256 the manifest says."""
    objects = s3_objects(aws, bucket)
    manifest = Manifest.from_json(objects[summary["manifest"]])
    prefix = summary["manifest"].rsplit("/", 1)[0] + "/"
    for fmt in ("h5", "tflite"):
        for ref in manifest.files(fmt):
            assert hashlib.sha256(objects[prefix + ref.path]).hexdigest() == ref.sha256
    assert manifest.sha256 == summary["sha256"]
    return manifest


@pytest.mark.parametrize("layout", ["softmax", "one-vs-rest"])
def test_upload_model_fixture_layouts_uploads_verified_files_then_moves_the_pointer(aws, bucket, layout):
    summary = ok(run("upload-model", "--json", "--bucket", bucket, MODELS[layout]))
    manifest = check_uploaded(aws, bucket, summary)
    assert manifest.layout == layout and summary["layout"] == layout
    assert len(summary["files"]) == (2 if layout == "softmax" else 10)
    assert pointer(aws, bucket) == {"manifest": summary["manifest"], "name": manifest.name, "version": manifest.version,
                                    "sha256": manifest.sha256}


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_upload_model_bare_portland_state_dir_is_converted_and_parity_checked(aws, bucket, psu_bare_dir, isolated_cache,
                                                                             tensorflow_available):
    summary = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "psu", psu_bare_dir))
    assert summary["name"] == "psu" and summary["layout"] == "one-vs-rest"
    manifest = check_uploaded(aws, bucket, summary)
    assert [m.files["h5"].path for m in manifest.members] == [f"model_{i}_prime.h5" for i in range(5)]
    for i in range(5):  # the .h5 files are the very files given
        assert manifest.members[i].files["h5"].sha256 == hashlib.sha256((psu_bare_dir / f"model_{i}_prime.h5").read_bytes()).hexdigest()
    assert pointer(aws, bucket)["manifest"] == summary["manifest"]


def test_models_list_promote_rollback_and_no_promote(aws, bucket):
    first = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["one-vs-rest"]))
    second = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["softmax"]))
    assert second["previous"]["version"] == "1"
    third = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "3", "--no-promote", MODELS["softmax"]))
    assert third["promoted"] is False and pointer(aws, bucket)["version"] == "2"
    listing = ok(run("models", "list", "--json", "--bucket", bucket))
    assert [(m["version"], m["current"]) for m in listing["models"]] == [("1", False), ("2", True), ("3", False)]
    rolled = ok(run("models", "promote", "--json", "--bucket", bucket, "m", "1"))
    assert rolled["previous"]["version"] == "2" and rolled["current"]["manifest"] == first["manifest"]
    assert pointer(aws, bucket)["manifest"] == first["manifest"]
    human = run("models", "list", "--bucket", bucket)
    assert human.exit_code == 0 and "▶" in human.stdout
    missing = run("models", "promote", "--bucket", bucket, "m", "9")
    assert missing.exit_code == ExitStatus.BAD_INPUT and "does not exist" in missing.stderr
    assert pointer(aws, bucket)["manifest"] == first["manifest"]


def test_promote_refuses_an_incomplete_version(aws, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["softmax"]))
    aws.client("s3").delete_object(Bucket=bucket, Key="models/m/2/model.tflite")
    result = run("models", "promote", "--bucket", bucket, "m", "2")
    assert result.exit_code == ExitStatus.BAD_INPUT and "incomplete" in result.stderr
    assert pointer(aws, bucket)["version"] == "1"


def test_an_interrupted_model_upload_leaves_the_pointer_on_the_previous_version(aws, bucket, monkeypatch):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    real, calls = store._upload_file, []

    def flaky(s3, path, bucket_, key, progress, extra=None):
        calls.append(key)
        if len(calls) == 3:
            raise AwsError("upload model_2_prime.h5: connection reset", kind="S3Unreachable")
        return real(s3, path, bucket_, key, progress, extra)

    monkeypatch.setattr(store, "_upload_file", flaky)
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["one-vs-rest"])
    assert result.exit_code == ExitStatus.AWS and "connection reset" in result.stderr
    assert len(calls) == 3
    assert pointer(aws, bucket)["version"] == "1"
    assert "models/m/2/manifest.json" not in s3_objects(aws, bucket)


def test_upload_model_killed_before_the_pointer_moves_leaves_the_previous_version(aws, bucket, moto_server):
    """A real SIGKILL at the worst moment: every file and the manifest uploaded, the pointer not yet moved."""
    import signal
    import subprocess
    import sys

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    code = (
        "import os, signal, sys\n"
        "from rcyc_cli.cloud import store as s3\n"
        "s3.move_pointer = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from rcyc_cli.main import cli\n"
        "cli(sys.argv[1:])\n"
    )
    args = ["upload-model", "--bucket", bucket, "--name", "m", "--version", "2", str(MODELS["one-vs-rest"])]
    killed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    objects = s3_objects(aws, bucket)
    assert "models/m/2/manifest.json" in objects  # it got as far as it could
    assert pointer(aws, bucket)["version"] == "1"  # and the function still sees the last complete version
    rerun = subprocess.run([sys.executable, "-m", "rcyc_cli.main", *args], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert pointer(aws, bucket)["version"] == "2"


# --------------------------------------------------------------------------------------------------
# images


def test_upload_image_refuses_files_that_do_not_decode(aws, bucket):
    for bad in bad_images():
        result = run("upload-image", "--bucket", bucket, SODA, bad)
        assert result.exit_code == ExitStatus.BAD_INPUT, (bad, result.stderr)
        assert str(bad) in result.stderr and "hint: " in result.stderr
    assert aws.client("s3").list_buckets()["Buckets"] == [] or bucket not in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]


def test_upload_image_prints_keys_and_sets_content_types(aws, bucket):
    png = IMAGES / "edge" / next(p.name for p in (IMAGES / "edge").iterdir() if p.suffix == ".png")
    result = run("upload-image", "--bucket", bucket, "--prefix", "images/batch1", SODA, png)
    assert result.exit_code == 0, result.stderr
    assert f"s3://{bucket}/images/batch1/soda_cans_0.jpg" in result.stdout
    s3 = aws.client("s3")
    assert s3.head_object(Bucket=bucket, Key=f"images/batch1/{png.name}")["ContentType"] == "image/png"


# --------------------------------------------------------------------------------------------------
# invoke through the real emulator; the model pointer reaching a warm instance


@pytest.fixture
def sandbox(aws, moto_server, bucket, rie_path):
    """One function instance (the real emulator + awslambdaric) reading the moto S3; it re-checks the
    pointer on every invocation."""
    box = ProcessSandbox(rie_path, env={"AWS_ENDPOINT_URL_S3": moto_server.endpoint_url, "RCYC_MODEL_BUCKET": bucket,
                                        "RCYC_MODEL_REFRESH_SECONDS": "0"}, timeout=60)
    box.start()
    try:
        yield box
    finally:
        box.stop()
        assert box.process.poll() is not None


def test_invoke_shows_the_prediction_from_the_function(aws, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["one-vs-rest"]))
    uploaded = ok(run("upload-image", "--json", "--bucket", bucket, "--invoke", "--endpoint-url", sandbox.endpoint_url, SODA))
    assert uploaded["invoke"]["response"]["results"][0]["label"] == "soda_cans"
    output = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    [result] = output["results"]
    assert (result["bucket"], result["key"], result["label"]) == (bucket, "images/soda_cans_0.jpg", "soda_cans")
    assert list(result["scores"]) == ["boxes", "glass_bottles", "soda_cans", "crushed_soda_cans", "plastic_bottles"]
    assert output["model"]["name"] == "fixture-psu"
    assert output["invocation"]["function"] == "function"
    human = run("invoke", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert human.exit_code == 0 and "▶ soda_cans" in human.stdout
    missing = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg", "images/nope.jpg")
    assert missing.exit_code == ExitStatus.RECORD_ERRORS
    body = json.loads(missing.stdout)
    assert [e["error"] for e in body["errors"]] == ["NoSuchKey"] and len(body["results"]) == 1


def test_a_promoted_model_reaches_a_warm_instance_without_a_restart(aws, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["one-vs-rest"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    pid = sandbox.process.pid
    first = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert first["model"]["name"] == "fixture-psu" and first["results"][0]["label"] == "soda_cans"
    ok(run("upload-model", "--json", "--bucket", bucket, "--no-promote", MODELS["softmax"]))
    unchanged = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert unchanged["model"]["name"] == "fixture-psu"  # uploaded but not promoted: not live
    softmax = Manifest.load(MODELS["softmax"])
    ok(run("models", "promote", "--json", "--bucket", bucket, softmax.name, softmax.version))
    second = ok(run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg"))
    assert second["model"] == softmax.summary()
    assert second["results"][0]["label"] == "soda_cans"
    assert [len(r) for r in first["results"][0]["raw"]] == [2] * 5  # one-vs-rest: five networks of two outputs
    assert len(second["results"][0]["raw"]) == 5 and all(isinstance(v, float) for v in second["results"][0]["raw"])
    assert sandbox.process.pid == pid and sandbox.process.poll() is None
    log = sandbox.read_log().decode()
    assert log.count("INIT REPORT") == 1 and log.count("REPORT RequestId") == 3  # one cold start, then warm
    assert [json.loads(line)["model"]["name"] for line in log.splitlines() if '"rcyc": "model_loaded"' in line] == \
        ["fixture-psu", softmax.name]


# --------------------------------------------------------------------------------------------------
# deploy: ECR API + Lambda API (moto), image bytes through a real registry


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
def test_deploy_creates_then_updates_then_changes_nothing(aws, bucket, registry, engine, function_image, monkeypatch):
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
    assert aws.client("ecr").describe_repositories()["repositories"] == [] or repository not in \
        [r["repositoryName"] for r in aws.client("ecr").describe_repositories()["repositories"]]
    assert function not in [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]
    assert registry_manifest(registry, repository, "v1")[0] == 404

    # 1. create: the image is built (the function image, a cache hit when unchanged) and pushed.
    created = ok(run("deploy", "--json", "--tag", "v1", *common, *build_args()))
    image = created["image"]
    assert image["action"] == "pushed" and image["layers_pushed"] + image["layers_existing"] > 0
    digest1 = image["digest"]
    repo = aws.client("ecr").describe_repositories(repositoryNames=[repository])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert image["uri"] == f"{repo['repositoryUri']}@{digest1}"
    status, manifest, served = registry_manifest(registry, repository, "v1")
    assert status == 200 and served == digest1 and manifest["config"]["digest"] == image["image_id"]
    fn = created["function"]
    assert fn["action"] == "created" and fn["state"] == "Active" and fn["version"] == "1"
    lam = aws.client("lambda")
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


def test_deploy_role_is_least_privilege(aws, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    ok(run("deploy", "--json", "--tag", "lp", "--image", function_image, "--bucket", bucket, "--function", function,
           "--registry", registry.host, "--registry-username", registry.username))
    iam = aws.client("iam")
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


def test_deploy_with_the_ecr_token_against_a_basic_auth_registry_is_a_refused_login(aws, bucket, registry, engine, function_image):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    token = aws.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    result = run("deploy", "--tag", "x", "--image", function_image, "--bucket", bucket, "--function", f"fn-{bucket}",
                 "--registry", registry.host)
    assert result.exit_code == ExitStatus.AWS
    assert "refused the login" in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr
    import base64

    secret = base64.b64decode(token).decode().partition(":")[2]
    assert token not in result.stdout + result.stderr and secret not in result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------
# errors users meet


def test_no_credentials_is_one_line_with_a_hint(aws, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("upload-image", "--bucket", bucket, SODA)
    assert result.exit_code == ExitStatus.AWS
    assert "no AWS credentials" in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr


def test_no_region_is_one_line_with_a_hint(aws, bucket, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run("invoke", "--bucket", bucket, "images/x.jpg")
    assert result.exit_code == ExitStatus.AWS and "no AWS region" in result.stderr and "--region" in result.stderr


def test_invoking_a_missing_function_says_so(aws, bucket):
    result = run("invoke", "--json", "--bucket", bucket, "--function", "no-such-function", "images/x.jpg")
    assert result.exit_code == ExitStatus.AWS and result.stdout == ""
    assert "ResourceNotFoundException" in result.stderr and "region" in result.stderr


def test_json_output_is_only_json(aws, bucket):
    result = run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"])
    assert result.exit_code == 0
    json.loads(result.stdout)  # nothing but JSON on stdout
    assert result.stderr == ""


def test_deploy_trigger_wires_s3_notifications_and_a_results_prefix(aws, bucket, registry, engine, function_image, monkeypatch):
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
    rules = aws.client("s3").get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert [(r["LambdaFunctionArn"], r["Events"], [(f["Name"].lower(), f["Value"]) for f in r["Filter"]["Key"]["FilterRules"]])
            for r in rules] == [(arn, ["s3:ObjectCreated:*"], [("prefix", "incoming/")])]
    [statement] = json.loads(aws.client("lambda").get_policy(FunctionName=function)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{bucket}"
    env = aws.client("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert env["RCYC_RESULTS_PREFIX"] == "results/"
    document = aws.client("iam").get_role_policy(RoleName=f"{function}-role", PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    writes = [s for s in document["Statement"] if s["Action"] == "s3:PutObject"]
    assert writes == [{"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/results/*"}]
    reads = next(s for s in document["Statement"] if s["Action"] == "s3:GetObject")["Resource"]
    assert f"arn:aws:s3:::{bucket}/incoming/*" in reads
    # Deploying the same again changes nothing, the trigger included.
    again = ok(run("deploy", "--json", "--tag", "tr", *common, "--trigger", "incoming/"))
    assert again["function"]["action"] == "unchanged" and again["role"]["action"] == "unchanged"
    assert len(aws.client("s3").get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]) == 1


def test_deploy_to_a_missing_bucket_says_to_upload_a_model_first(aws, bucket):
    result = run("deploy", "--tag", "v1", "--bucket", bucket, "--dry-run")
    assert result.exit_code == ExitStatus.AWS and f"the bucket {bucket} does not exist" in result.stderr
    assert "rcyc upload-model" in result.stderr


def test_an_unreachable_registry_is_one_line_with_a_hint(aws, bucket, engine, function_image, monkeypatch):
    from rcyc_cli.local.emulator.ports import free_port

    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", "not-a-real-password")
    result = run("deploy", "--tag", "v1", "--image", function_image, "--bucket", bucket, "--function", f"fn-{bucket}",
                 "--registry", f"127.0.0.1:{free_port()}", "--registry-username", "rcyc")
    assert result.exit_code == ExitStatus.AWS and "cannot reach the registry" in result.stderr and "hint: " in result.stderr
    assert "not-a-real-password" not in result.stdout + result.stderr
    assert f"fn-{bucket}" not in [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]


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


def test_upload_model_refuses_what_is_not_a_model(aws, bucket, tmp_path):
    (tmp_path / "model_0_prime.h5").write_bytes(b"not a model")
    result = run("upload-model", "--bucket", bucket, tmp_path)
    assert result.exit_code == ExitStatus.BAD_INPUT and "model_N_prime.h5" in result.stderr and "hint: " in result.stderr
    assert bucket not in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]


def test_human_deploy_plan_renders(aws, bucket, registry, engine, function_image, monkeypatch):
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


# --------------------------------------------------------------------------------------------------
# issue 11: every refusal is one clear error; public means public; published versions never change


def test_a_refused_s3_write_is_one_line_for_models_and_images(aws, bucket):
    """A bucket policy denying s3:PutObject (on AWS: a missing permission, a KMS denial, an SCP) makes
    boto3's upload_file raise S3UploadFailedError, not a ClientError: still one line, exit 5."""
    ok(run("upload-image", "--json", "--bucket", bucket, BOX))  # rcyc creates the bucket
    s3 = aws.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": [f"arn:aws:s3:::{bucket}/models/*", f"arn:aws:s3:::{bucket}/images/*"]}]}))
    for command in (["upload-model", "--json", MODELS["softmax"]], ["upload-image", "--json", SODA]):
        result = run(*command, "--bucket", bucket)
        assert result.exit_code == ExitStatus.AWS, result.stderr
        assert "AccessDenied" in result.stderr and "hint: " in result.stderr and "bucket policy" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert pointer_or_none(aws, bucket) is None
    assert "images/soda_cans_0.jpg" not in s3_objects(aws, bucket)


def pointer_or_none(aws, bucket):
    try:
        return pointer(aws, bucket)
    except aws.client("s3").exceptions.NoSuchKey:
        return None


def test_an_invalid_bucket_name_is_bad_input_without_a_network_hint(aws):
    for command in (["upload-image", SODA], ["upload-model", MODELS["softmax"]], ["models", "list"],
                    ["models", "promote", "m", "1"], ["deploy", "--tag", "v1", "--dry-run"], ["invoke", "images/x.jpg"]):
        result = run(*command, "--bucket", "Bad_Bucket!!")
        assert result.exit_code == ExitStatus.BAD_INPUT, (command, result.stderr)
        assert "Bad_Bucket!!" in result.stderr and "network" not in result.stderr and "Traceback" not in result.stderr
    audit = run("doctor", "--security", "Bad_Bucket!!")
    assert audit.exit_code == ExitStatus.BAD_INPUT


def test_models_promote_without_usable_credentials_or_endpoint_is_one_line(aws, bucket, monkeypatch, tmp_path):
    from rcyc_cli.local.emulator.ports import free_port

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    with monkeypatch.context() as env:  # a refused endpoint
        env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "cannot reach" in result.stderr and "Traceback" not in result.stderr
    with monkeypatch.context() as env:  # no credentials at all
        env.delenv("AWS_ACCESS_KEY_ID")
        env.delenv("AWS_SECRET_ACCESS_KEY")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "no AWS credentials" in result.stderr and "Traceback" not in result.stderr
    with monkeypatch.context() as env:  # an SSO profile whose login is missing/expired (no token in the cache)
        env.delenv("AWS_ACCESS_KEY_ID")
        env.delenv("AWS_SECRET_ACCESS_KEY")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("HOME", str(tmp_path))  # an empty ~/.aws/sso/cache
        config = tmp_path / "sso-config"
        config.write_text("[profile rcyc-sso]\nsso_start_url = https://rcyc-test.invalid/start\nsso_region = us-east-1\n"
                          "sso_account_id = 111122223333\nsso_role_name = reader\nregion = us-east-1\n")
        env.setenv("AWS_CONFIG_FILE", str(config))
        env.setenv("AWS_PROFILE", "rcyc-sso")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "aws sso login" in result.stderr, result.stderr
        assert "network" not in result.stderr and "Traceback" not in result.stderr


def world_readable(bucket: str, condition: dict | None) -> str:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def audit_json(target):
    result = run("doctor", "--security", target, "--json")
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


@pytest.mark.parametrize("condition, public", [
    ({"Bool": {"aws:SecureTransport": "true"}}, True),  # TLS says nothing about who asks
    ({"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}}, True),  # half the internet
    ({"StringEquals": {"aws:SourceVpce": "vpce-*"}}, True),  # a wildcard pins nothing (StringEquals: literal "*"...)
    ({"StringLike": {"aws:SourceVpce": "vpce-*"}}, True),
    ({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, False),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, False),
])
def test_public_means_what_aws_means_for_upload_and_audit(aws, bucket, condition, public):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=world_readable(bucket, condition))
    upload = run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"])
    _, findings = audit_json(bucket)
    if public:
        assert upload.exit_code == ExitStatus.AWS and f"bucket {bucket} is public" in upload.stderr
        assert not [k for k in s3_objects(aws, bucket) if k.startswith("models/")]
        assert findings["public"]["severity"] == "high"
    else:
        assert upload.exit_code == 0, upload.stderr
        assert findings["public"]["severity"] == "ok"


def test_doctor_security_passes_on_a_bucket_rcyc_created_on_a_local_endpoint(aws, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    code, findings = audit_json(bucket)
    assert code == 0, findings
    assert findings["TLS only"]["severity"] == "not applicable"  # rcyc skips that policy here on purpose
    assert {f["severity"] for name, f in findings.items() if name != "TLS only"} == {"ok"}
    # Each careless variant is a finding (exit 8).
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert audit_json(bucket)[0] == ExitStatus.FINDINGS
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_public_access_block(Bucket=bucket)
    assert audit_json(bucket)[0] == ExitStatus.FINDINGS
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(buckets.BLOCK_ALL))
    assert audit_json(bucket)[0] == 0


def test_a_published_model_version_never_changes(aws, bucket):
    first = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    assert first["uploaded"] is True
    s3 = aws.client("s3")
    before = s3_objects(aws, bucket)
    versions = len(s3.list_object_versions(Bucket=bucket)["Versions"])
    # Other content under the same name/version: refused, with --no-promote too; nothing changes.
    for extra in ([], ["--no-promote"]):
        other = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "1", *extra, MODELS["one-vs-rest"])
        assert other.exit_code == ExitStatus.BAD_INPUT, other.stderr
        assert "already published" in other.stderr and "--version" in other.stderr
    assert s3_objects(aws, bucket) == before
    # The same content again: nothing is sent, and the output says so.
    again = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"])
    assert again.exit_code == 0 and "already uploaded" in again.stdout
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == versions
    assert ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))["uploaded"] is False
    # A packaged directory takes its version from its manifest: re-uploading other content under it is refused too.
    assert run("upload-model", "--bucket", bucket, "--name", "m", MODELS["one-vs-rest"]).exit_code == ExitStatus.BAD_INPUT


def test_an_unpublished_version_keeps_no_files_of_an_interrupted_upload_of_another_layout(aws, bucket):
    s3 = aws.client("s3")
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    s3.put_object(Bucket=bucket, Key="models/m/1/model_3_prime.h5", Body=b"left by an interrupted upload")
    summary = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    assert sorted(k for k in s3_objects(aws, bucket) if k.startswith("models/m/1/")) == \
        ["models/m/1/manifest.json", "models/m/1/model.h5", "models/m/1/model.tflite"]
    check_uploaded(aws, bucket, summary)


def test_a_cold_instance_refuses_a_manifest_changed_after_publishing(aws, bucket, sandbox):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    # Rewritten behind rcyc's back (rcyc itself refuses): the pointer still names the published sha256.
    other = Manifest.load(MODELS["one-vs-rest"])
    import dataclasses

    other = dataclasses.replace(other, name="m", version="1")
    aws.client("s3").put_object(Bucket=bucket, Key="models/m/1/manifest.json", Body=other.to_json().encode())
    result = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert result.exit_code == ExitStatus.RECORD_ERRORS, result.stderr
    [error] = json.loads(result.stdout)["errors"]
    assert error["error"] == "ModelIntegrityError" and "pointer" in error["message"]


# --------------------------------------------------------------------------------------------------
# issue 11: a model is what it outputs on probe inputs


def repackaged(tmp_path, layout: str, swap: dict[str, Path]) -> Path:
    """A copy of a fixture model directory with some .tflite files replaced and the manifest rewritten to
    match (so only behaviour can tell)."""
    import shutil

    from rcyc_core.manifest import FileRef, Member, sha256_file

    directory = tmp_path / f"{layout}-repackaged"
    shutil.copytree(MODELS[layout], directory)
    for name, source in swap.items():
        shutil.copyfile(source, directory / name)
    manifest = Manifest.load(directory)
    members = tuple(Member(m.label, {fmt: FileRef(ref.path, sha256_file(directory / ref.path)) for fmt, ref in m.files.items()})
                    for m in manifest.members)
    Manifest(manifest.name, "repackaged", manifest.layout, manifest.input, members).write(directory)
    return directory


@pytest.mark.parametrize("layout, swap, found", [
    ("softmax", {"model.tflite": MODELS["one-vs-rest"] / "model_0_prime.tflite"}, "outputs shape (2,), softmax needs (5,)"),
    ("one-vs-rest", {"model_2_prime.tflite": MODELS["softmax"] / "model.tflite"}, "member 2 (soda_cans) outputs shape (5,)"),
])
def test_upload_model_refuses_a_packaged_model_whose_outputs_break_its_layout(aws, bucket, tmp_path, layout, swap, found):
    directory = repackaged(tmp_path, layout, swap)
    result = run("upload-model", "--json", "--bucket", bucket, directory)
    assert result.exit_code == ExitStatus.BAD_INPUT, result.stderr
    assert found in result.stderr and "hint: " in result.stderr and result.stdout == ""
    assert bucket not in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]  # refused before any AWS call


LINEAR_MODEL = """
import sys
from rcyc_core.backends import import_keras
keras = import_keras()
inputs = keras.Input((32, 32, 3))
hidden = keras.layers.GlobalAveragePooling2D()(inputs)
keras.Model(inputs, keras.layers.Dense(5, bias_initializer="ones")(hidden)).save(sys.argv[1])
"""


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_upload_model_refuses_a_keras_model_without_a_softmax_and_tensorflow_stays_quiet(aws, bucket, tmp_path, isolated_cache,
                                                                                        tensorflow_available):
    """A 5-unit Dense with a linear last layer has the right shape but its scores are not probabilities."""
    import subprocess
    import sys

    linear = tmp_path / "linear.h5"
    made = subprocess.run([sys.executable, "-c", LINEAR_MODEL, str(linear)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    result = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "upload-model", "--json", "--bucket", bucket, str(linear)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == ExitStatus.BAD_INPUT, result.stderr
    assert "does not behave as a softmax model" in result.stderr and "sum to" in result.stderr
    assert result.stdout == ""
    for noise in ("oneDNN", "absl", "Saved artifact", "TensorSpec"):
        assert noise not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) <= 4, result.stderr
    assert bucket not in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]


# --------------------------------------------------------------------------------------------------
# issue 11: deploys converge to what the command says


def role_document(aws, function: str) -> dict:
    document = aws.client("iam").get_role_policy(RoleName=f"{function}-role", PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def trigger_state(aws, bucket: str, function: str) -> dict:
    """The four parts of a trigger, read back from moto: notification, invoke permission, role read, results env."""
    rules = aws.client("s3").get_bucket_notification_configuration(Bucket=bucket).get("LambdaFunctionConfigurations", [])
    lam = aws.client("lambda")
    try:
        statements = json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
    except lam.exceptions.ResourceNotFoundException:
        statements = []
    reads = next(s for s in role_document(aws, function)["Statement"] if s["Action"] == "s3:GetObject")["Resource"]
    writes = [s for s in role_document(aws, function)["Statement"] if s["Action"] == "s3:PutObject"]
    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    return {"prefixes": [r["Filter"]["Key"]["FilterRules"][0]["Value"] for r in rules],
            "permissions": [s["Sid"] for s in statements if s["Sid"].startswith("rcyc-s3-trigger-")],
            "reads": sorted(r.rsplit("/", 1)[0].split(":::", 1)[1].split("/", 1)[1] for r in reads),
            "writes": len(writes), "results": env.get("RCYC_RESULTS_PREFIX")}


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_the_trigger_is_kept_whole_moved_whole_or_removed_whole(aws, bucket, registry, engine, function_image, monkeypatch):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    common = ["--tag", "tw", "--image", function_image, "--bucket", bucket, "--function", function, "--registry", registry.host,
              "--registry-username", registry.username]
    whole = {"prefixes": ["incoming/"], "reads": ["images", "incoming", "models"], "writes": 1, "results": "results/"}
    ok(run("deploy", "--json", *common, "--trigger", "incoming/"))
    state = trigger_state(aws, bucket, function)
    assert len(state.pop("permissions")) == 1 and state == whole

    # A later deploy without --trigger keeps it whole, and says so.
    kept = ok(run("deploy", "--json", *common))
    assert kept["trigger"]["action"] == "kept" and any("--no-trigger" in w for w in kept["warnings"])
    assert (kept["role"]["action"], kept["function"]["action"]) == ("unchanged", "unchanged")
    state = trigger_state(aws, bucket, function)
    assert len(state.pop("permissions")) == 1 and state == whole

    # Another prefix replaces it whole: one rule, one permission.
    moved = ok(run("deploy", "--json", *common, "--trigger", "uploads/"))
    assert moved["trigger"]["action"] == "configured"
    state = trigger_state(aws, bucket, function)
    assert len(state.pop("permissions")) == 1
    assert state == {**whole, "prefixes": ["uploads/"], "reads": ["images", "models", "uploads"]}

    # --no-trigger removes every part of it.
    plan = ok(run("deploy", "--json", "--dry-run", *common, "--no-trigger"))
    assert plan["trigger"]["action"] == "remove"
    removed = ok(run("deploy", "--json", *common, "--no-trigger"))
    assert removed["trigger"]["action"] == "removed"
    assert trigger_state(aws, bucket, function) == {"prefixes": [], "permissions": [], "reads": ["images", "models"],
                                                    "writes": 0, "results": None}
    contradiction = run("deploy", *common, "--trigger", "a/", "--no-trigger")
    assert contradiction.exit_code == ExitStatus.BAD_INPUT

    # What rcyc created passes the audit on this local endpoint (TLS-only: not applicable here).
    code, findings = audit_json(f"{bucket}/{function}")
    assert code == 0, findings
    assert {f["severity"] for f in findings.values()} == {"ok", "not applicable"}


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


def test_the_architecture_is_set_on_update_and_checked_against_the_image(aws, bucket, registry, engine, function_image,
                                                                        monkeypatch, moto_lambda_takes_architectures):
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    common = ["--bucket", bucket, "--function", function, "--registry", registry.host, "--registry-username", registry.username]
    lam = aws.client("lambda")

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


def test_a_failed_smoke_test_still_prints_the_deploy_summary(aws, bucket, registry, engine, function_image, monkeypatch):
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
    digest = aws.client("lambda").get_function(FunctionName=f"fn-{bucket}")["Code"]["ImageUri"].rsplit("@", 1)[1]
    assert f"digest: {digest}" in human.stdout  # whole, never cut at 80 columns
    assert any(line.startswith("image uri: ") and line.endswith(digest) for line in human.stdout.splitlines())
    machine = run("deploy", "--json", *common)
    assert machine.exit_code == ExitStatus.FUNCTION_FAILED
    summary = json.loads(machine.stdout)
    assert summary["function"]["action"] == "unchanged" and summary["smoke"]["error"]["kind"] == "FunctionError"


def test_a_dry_run_needs_no_docker_engine(aws, bucket, registry, monkeypatch):
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


def test_the_ecr_token_goes_only_to_ecr(aws, bucket):
    import base64

    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    token = aws.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
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


def test_a_tag_naming_a_multi_platform_index_is_not_deployed(aws, bucket, registry, engine, function_image, monkeypatch):
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
    plan = ok(run("deploy", "--json", "--dry-run", "--tag", "multi", "--image", function_image, *common))
    assert plan["image"]["action"].startswith("refuse") and "index" in plan["image"]["action"]


def test_upload_image_takes_directories_and_glob_patterns(aws, bucket):
    directory = ok(run("upload-image", "--json", "--bucket", bucket, IMAGES / "boxes"))
    expected = sorted(p.name for p in (IMAGES / "boxes").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert sorted(e["key"].rsplit("/", 1)[1] for e in directory["images"]) == expected
    pattern = ok(run("upload-image", "--json", "--bucket", bucket, "--prefix", "images/glob", str(IMAGES / "soda_cans" / "*_0.jpg")))
    assert [e["key"] for e in pattern["images"]] == ["images/glob/soda_cans_0.jpg"]
    nothing = run("upload-image", "--bucket", bucket, str(IMAGES / "soda_cans" / "*.nope"))
    assert nothing.exit_code == ExitStatus.BAD_INPUT and "no files match" in nothing.stderr


def test_a_function_instance_refuses_a_model_whose_outputs_break_its_layout(aws, bucket, sandbox, tmp_path):
    """Put into the bucket past upload-model's check (as any other S3 writer could): the function checks too."""
    directory = repackaged(tmp_path, "softmax", {"model.tflite": MODELS["one-vs-rest"] / "model_0_prime.tflite"})
    s3 = aws.client("s3")
    buckets.ensure_private_bucket(s3, bucket)
    store.put_model(s3, bucket, Manifest.load(directory), directory)
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    result = run("invoke", "--json", "--bucket", bucket, "--endpoint-url", sandbox.endpoint_url, "images/soda_cans_0.jpg")
    assert result.exit_code == ExitStatus.RECORD_ERRORS, result.stderr
    [error] = json.loads(result.stdout)["errors"]
    assert error["error"] == "InvalidModelOutput" and "softmax needs (5,)" in error["message"]
