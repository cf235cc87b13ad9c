"""A published model version never changes, against moto's real HTTP server: concurrent uploads of the
same version have exactly one intact winner and losers leave nothing; promote and "already uploaded" check
every file against the manifest; a version whose manifest was deleted stays taken."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rcyc_cli.exit_status import ExitStatus
from rcyc_core.errors import RcycError
from rcyc_core.manifest import FileRef, Manifest, Member, sha256_file
from tests.cli import run
from tests.conftest import MODELS
from tests.e2e.cloud_checks import ok, pointer

pytestmark = pytest.mark.e2e
RACERS, ROUNDS = 8, 10


@pytest.fixture
def bucket(request) -> str:
    # not conftest's: its longer name keeps models list's human warning wrapped as the test below expects
    return "rcyc-int-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]


def variant(tmp_path: Path, n: int, layout: str = "softmax") -> Path:
    """The fixture model with other content (bytes appended to its .h5, the manifest rewritten): a
    different model under the same name, as far as the bucket can tell."""
    directory = tmp_path / f"{layout}-{n}"
    shutil.copytree(MODELS[layout], directory)
    first = next(p for p in sorted(directory.glob("*.h5")))
    with open(first, "ab") as handle:
        handle.write(b"\0" * (n + 1))
    manifest = Manifest.load(directory)
    members = tuple(Member(m.label, {fmt: FileRef(ref.path, sha256_file(directory / ref.path)) for fmt, ref in m.files.items()})
                    for m in manifest.members)
    Manifest("race", "1", manifest.layout, manifest.input, members).write(directory)
    return directory


def version_state(aws_on_moto, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """(problems, keys) of one version prefix: every object version and delete marker under it must be the
    one current version of the manifest or of a file it names, with the sha256 it names."""
    s3 = aws_on_moto.client("s3")
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    versions = listing.get("Versions", [])
    keys = [v["Key"] for v in versions]
    problems = [f"delete marker {m['Key']}" for m in listing.get("DeleteMarkers", [])]
    if len(set(keys)) != len(keys):
        problems.append(f"more than one version of a key: {sorted(keys)}")
    if prefix + "manifest.json" not in keys:
        return (problems + ["no manifest"] if keys else problems), keys
    manifest = Manifest.from_json(s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    named = {prefix + manifest.object_path(ref): ref.sha256 for fmt in ("h5", "tflite") if manifest.has(fmt)
             for ref in manifest.files(fmt)}
    for key in keys:
        if key == prefix + "manifest.json":
            continue
        if key not in named:
            problems.append(f"leftover {key}")
        elif hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() != named[key]:
            problems.append(f"corrupt {key}")
    problems += [f"missing {key}" for key in named if key not in keys]
    return problems, keys


def test_concurrent_uploads_of_one_version_have_one_intact_winner_and_losers_leave_nothing(aws_on_moto, bucket, tmp_path):
    """8 concurrent uploads of different models to the same name/version, 10 times (each on a version of
    its own): 0 corrupt versions, 0 leftovers, exactly one winner each time, the pointer on a winner."""
    from rcyc_cli.cloud import models

    directories = [variant(tmp_path, n, "softmax" if n % 2 else "one-vs-rest") for n in range(RACERS)]
    corrupt, winners_per_round = [], []
    for round_ in range(ROUNDS):
        version = f"r{round_}"
        outcomes: list = [None] * RACERS
        start = threading.Barrier(RACERS)

        def upload(i: int) -> None:
            start.wait()
            try:
                outcomes[i] = models.upload_model(directories[i], bucket, name="race", version=version)
            except RcycError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in outcomes if isinstance(o, dict)]
        losers = [o for o in outcomes if isinstance(o, RcycError)]
        assert len(winners) + len(losers) == RACERS, outcomes  # nothing else (no bug) escaped
        assert all(o.kind == "VersionExists" for o in losers), [o.message for o in losers]
        winners_per_round.append(len(winners))
        problems, _ = version_state(aws_on_moto, bucket, f"models/race/{version}/")
        corrupt += [f"{version}: {p}" for p in problems]
        if winners:
            manifest = Manifest.from_json(aws_on_moto.client("s3").get_object(
                Bucket=bucket, Key=f"models/race/{version}/manifest.json")["Body"].read())
            assert winners[0]["sha256"] == manifest.sha256 and winners[0]["uploaded"] is True
    assert corrupt == []
    assert winners_per_round == [1] * ROUNDS
    # The pointer names a version whose manifest has the sha256 it says.
    pointer = json.loads(aws_on_moto.client("s3").get_object(Bucket=bucket, Key="models/current.json")["Body"].read())
    named = Manifest.from_json(aws_on_moto.client("s3").get_object(Bucket=bucket, Key=pointer["manifest"])["Body"].read())
    assert named.sha256 == pointer["sha256"]


def test_concurrent_upload_model_processes_have_one_winner(aws_on_moto, bucket, tmp_path):
    """The same race through the real CLI, one process per upload."""
    directories = [variant(tmp_path, n) for n in range(RACERS)]
    processes = [subprocess.Popen([sys.executable, "-m", "rcyc_cli.main", "upload-model", "--json", "--bucket", bucket,
                                   "--name", "race", "--version", "p", str(d)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for d in directories]
    try:
        results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
    assert sorted(code for code, _, _ in results) == [0] + [ExitStatus.BAD_INPUT] * (RACERS - 1), results
    for code, _, stderr in results:
        if code:
            assert stderr.count("error:") == 1 and "Traceback" not in stderr, stderr
    assert version_state(aws_on_moto, bucket, "models/race/p/")[0] == []


def published_file_key(aws_on_moto, bucket: str, prefix: str, name: str) -> str:
    manifest = Manifest.from_json(aws_on_moto.client("s3").get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    return prefix + manifest.files_prefix + name


def test_promote_refuses_a_version_whose_file_was_overwritten(aws_on_moto, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["softmax"]))
    key = published_file_key(aws_on_moto, bucket, "models/m/2/", "model.tflite")
    aws_on_moto.client("s3").put_object(Bucket=bucket, Key=key, Body=(MODELS["one-vs-rest"] / "model_0_prime.tflite").read_bytes())
    result = run("models", "promote", "--bucket", bucket, "m", "2")
    assert result.exit_code == ExitStatus.BAD_INPUT, result.stderr
    assert "corrupt" in result.stderr and "model.tflite" in result.stderr and "Traceback" not in result.stderr
    assert pointer(aws_on_moto, bucket)["version"] == "1"


def test_upload_model_promote_of_the_same_content_refuses_a_corrupted_version(aws_on_moto, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["softmax"]))
    key = published_file_key(aws_on_moto, bucket, "models/m/2/", "model.h5")
    aws_on_moto.client("s3").put_object(Bucket=bucket, Key=key, Body=b"changed behind rcyc's back")
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["softmax"])
    assert result.exit_code == ExitStatus.BAD_INPUT and "corrupt" in result.stderr, result.stderr
    assert pointer(aws_on_moto, bucket)["version"] == "1"


def test_already_uploaded_checks_every_file_and_refuses_an_incomplete_version(aws_on_moto, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["one-vs-rest"]))
    aws_on_moto.client("s3").delete_object(Bucket=bucket, Key=published_file_key(aws_on_moto, bucket, "models/m/2/", "model_3_prime.tflite"))
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["one-vs-rest"])
    assert result.exit_code == ExitStatus.BAD_INPUT and "incomplete" in result.stderr, result.stderr
    assert "already uploaded" not in result.stdout
    assert pointer(aws_on_moto, bucket)["version"] == "1"


@pytest.mark.parametrize("versioned", [True, False])
def test_a_version_whose_manifest_was_deleted_stays_taken(aws_on_moto, bucket, versioned):
    s3 = aws_on_moto.client("s3")
    if not versioned:  # a bucket made outside rcyc, without versioning: the files left behind keep it taken
        s3.create_bucket(Bucket=bucket)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    s3.delete_object(Bucket=bucket, Key="models/m/1/manifest.json")
    before = s3.list_object_versions(Bucket=bucket, Prefix="models/m/1/")
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["one-vs-rest"])
    assert result.exit_code == ExitStatus.BAD_INPUT and "stays taken" in result.stderr, result.stderr
    after = s3.list_object_versions(Bucket=bucket, Prefix="models/m/1/")
    assert [v["VersionId"] for v in after.get("Versions", [])] == [v["VersionId"] for v in before.get("Versions", [])]
    assert after.get("DeleteMarkers", []) == before.get("DeleteMarkers", [])


def test_a_failed_upload_leaves_no_object_version_behind(aws_on_moto, bucket, monkeypatch):
    """Cut off after two files (a versioned bucket): what it wrote is removed by version, not hidden by a marker."""
    from rcyc_cli.cloud import store
    from rcyc_core.errors import AwsError

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    real, calls = store._put_verified, []

    def flaky(s3, bucket_, key, body, sha256, **extra):
        calls.append(key)
        if len(calls) == 3:
            raise AwsError("upload: connection reset", kind="S3Unreachable")
        return real(s3, bucket_, key, body, sha256, **extra)

    monkeypatch.setattr(store, "_put_verified", flaky)
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["one-vs-rest"])
    assert result.exit_code == ExitStatus.AWS and "connection reset" in result.stderr
    listing = aws_on_moto.client("s3").list_object_versions(Bucket=bucket, Prefix="models/m/2/")
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
    monkeypatch.setattr(store, "_put_verified", real)
    assert ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["one-vs-rest"]))["uploaded"]


def test_every_published_file_carries_s3s_sha256_checksum(aws_on_moto, bucket):
    import base64

    summary = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["one-vs-rest"]))
    s3 = aws_on_moto.client("s3")
    manifest = Manifest.from_json(s3.get_object(Bucket=bucket, Key=summary["manifest"])["Body"].read())
    import dataclasses

    local = dataclasses.replace(Manifest.load(MODELS["one-vs-rest"]), name="m", version="1")
    assert manifest.files_prefix and manifest.sha256 == local.sha256 == summary["sha256"]
    for ref in manifest.files("tflite") + manifest.files("h5"):
        head = s3.head_object(Bucket=bucket, Key="models/m/1/" + manifest.object_path(ref), ChecksumMode="ENABLED")
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == ref.sha256
    assert sorted(f["key"] for f in summary["files"]) == sorted(
        "models/m/1/" + manifest.object_path(ref) for ref in manifest.files("tflite") + manifest.files("h5"))


def test_a_pointer_whose_manifest_is_gone_is_marked_by_models_list_and_the_deploy_plan(aws_on_moto, bucket, monkeypatch):
    import os

    from tests.conftest import need
    from tests.e2e.cloud_fixtures import REGISTRY_BINARY, LocalRegistry

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    assert ok(run("models", "list", "--json", "--bucket", bucket))["warnings"] == []
    aws_on_moto.client("s3").delete_object(Bucket=bucket, Key="models/m/1/manifest.json")
    listing = ok(run("models", "list", "--json", "--bucket", bucket))
    assert len(listing["warnings"]) == 1 and "models/m/1/manifest.json, which does not exist" in listing["warnings"][0]
    assert "does not exist" in run("models", "list", "--bucket", bucket).stdout
    need(os.path.exists(REGISTRY_BINARY), "the docker-registry binary (.ci/docker-up.sh installs it)")
    registry = LocalRegistry().start()
    try:
        monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{bucket}-no-engine.sock")  # the plan needs no engine
        plan = ok(run("deploy", "--json", "--dry-run", "--tag", "t", "--bucket", bucket, "--function", f"fn-{bucket}",
                      "--registry", registry.host, "--registry-username", registry.username))
        assert any("which does not exist" in w for w in plan["warnings"]), plan["warnings"]
    finally:
        registry.stop()


def all_versions(aws_on_moto, bucket: str) -> list[tuple[str, str]]:
    listing = aws_on_moto.client("s3").list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []))


def test_invoke_local_on_a_real_bucket_uses_its_pointer_and_writes_only_under_its_run_prefix(aws_on_moto, bucket, moto_server, rie_path):
    from tests.conftest import IMAGES

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    before = all_versions(aws_on_moto, bucket)
    for model in ([], ["--model", MODELS["one-vs-rest"]]):
        result = run("invoke-local", "--json", "--no-stack", "--runtime", "process", "--rie", rie_path, "--endpoint-url",
                     moto_server.endpoint_url, "--bucket", bucket, *model, IMAGES / "soda_cans" / "soda_cans_0.jpg")
        output = ok(result)
        prefix = output["invocation"]["prefix"]
        assert output["model"]["name"] == ("m" if not model else "fixture-psu")  # the bucket's own pointer, or --model
        after = all_versions(aws_on_moto, bucket)
        assert after == before  # nothing outside the run's prefix, and every version under it purged
        assert pointer(aws_on_moto, bucket)["version"] == "1"
        assert aws_on_moto.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0


def test_invoke_local_on_a_bucket_without_a_model_asks_for_one(aws_on_moto, bucket, moto_server, rie_path):
    from tests.conftest import IMAGES

    aws_on_moto.client("s3").create_bucket(Bucket=bucket)
    result = run("invoke-local", "--no-stack", "--runtime", "process", "--rie", rie_path, "--endpoint-url",
                 moto_server.endpoint_url, "--bucket", bucket, IMAGES / "soda_cans" / "soda_cans_0.jpg")
    assert result.exit_code == ExitStatus.BAD_INPUT and "no current model" in result.stderr and "--model" in result.stderr
    assert aws_on_moto.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
