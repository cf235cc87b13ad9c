"""rcyc train --sagemaker and rcyc models import against moto's real server: the CreateTrainingJob request is
SageMaker's (botocore and moto take it; DescribeTrainingJob reads it back), --dry-run makes no call at all,
--create-role makes a least-privilege role SageMaker can assume, and a job's model.tar.gz (placed where the
job writes it) is imported as a candidate, promoted through the eval gate when it is not worse and refused
(exit 9, the pointer stays) when it is. A hostile archive is refused before anything is uploaded."""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import tarfile

import boto3
import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import MODELS, drawings, need
from tests.e2e.cloud_fixtures import point_aws_at

pytestmark = [pytest.mark.e2e]
BUCKET = "rcyc-sagemaker-models"
DATA_BUCKET = "rcyc-sagemaker-data"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rcyc-train@sha256:" + "ab" * 32
ROLE = "arn:aws:iam::123456789012:role/rcyc-training-role"


def client(service: str):
    return boto3.client(service, region_name="us-east-1")


def put_photos(tmp_path, per_label: int = 2) -> str:
    """A drawn training set under s3://DATA_BUCKET/datasets/drawn/<label>/<photo>, as a user syncs it."""
    folder = tmp_path / "drawn"
    drawings().write_folder(folder, per_label, 5)
    s3 = client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    for path in sorted(folder.rglob("*.jpg")):
        s3.upload_file(str(path), DATA_BUCKET, f"datasets/drawn/{path.relative_to(folder).as_posix()}")
    return f"s3://{DATA_BUCKET}/datasets/drawn/"


def tarball(model_dir) -> bytes:
    """What SageMaker uploads: /opt/ml/model's files at the top of model.tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dry_run_makes_no_call_and_prints_a_valid_request_with_its_cost(monkeypatch, tmp_path):
    # Every AWS endpoint at a closed loopback port: any call at all would fail the command (exit 5).
    point_aws_at(monkeypatch, f"http://127.0.0.1:{free_closed_port()}", tmp_path)
    result = run("train", "--sagemaker", "s3://some-data/datasets/drawn", "--role", "rcyc-training-role", "--create-role",
                 "--bucket", BUCKET, "--epochs", "3", "--spot", "--max-runtime", "1800", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    request = plan["request"]
    assert plan["dry_run"] is True and request["HyperParameters"]["epochs"] == "3"
    assert request["EnableManagedSpotTraining"] is True and request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800,
                                                                                             "MaxWaitTimeInSeconds": 3600}
    assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert plan["estimate"]["usd_per_hour"] == 0.23 and plan["estimate"]["max_usd"] == round(0.23 / 2, 4)
    human = run("train", "--sagemaker", "s3://some-data/x/", "--role", ROLE, "--bucket", BUCKET, "--dry-run")
    assert human.exit_code == 0 and "nothing was called" in human.stdout and "$0.23/h" in human.stdout


@pytest.mark.keras  # the imported model's parity (.h5 against .tflite)
def test_the_job_request_is_sagemakers_and_its_model_comes_in_as_a_candidate(aws_on_moto, bucket, tmp_path, isolated_cache):
    data = put_photos(tmp_path)
    job = "rcyc-train-moto-1"
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    # moto completes a job at once and writes nothing: the model goes where SageMaker would put it.
    s3.put_object(Bucket=bucket, Key=f"training/jobs/{job}/output/model.tar.gz", Body=tarball(MODELS["softmax"]))
    result = run("train", "--sagemaker", data, "--role", ROLE, "--image", IMAGE, "--bucket", bucket, "--job-name", job,
                 "--epochs", "3", "--fine-tune", "--instance-type", "ml.c5.xlarge", "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    described = client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE and described["RoleArn"] == ROLE
    assert described["HyperParameters"] == {"epochs": "3", "fine_tune": "true", "name": "rcyc-efficientnet-lite0",
                                            "seed": "0", "val_split": "0.2"}
    assert described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == data
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{bucket}/training/jobs/"
    assert described["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert summary["estimate"]["images"] == 10 and summary["status"] == "Completed"
    candidate = summary["candidate"]
    assert candidate["promoted"] is False and candidate["gate"] is None
    assert (candidate["version"], candidate["layout"]) == ("1", "softmax") and "max |keras - litert|" in candidate["parity"]
    listing = json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)
    assert listing["current"] is None and [m["name"] for m in listing["models"]] == ["rcyc-efficientnet-lite0"]


def test_create_role_makes_a_role_only_sagemaker_assumes_with_least_privilege(aws_on_moto, bucket, tmp_path):
    data = put_photos(tmp_path, 1)
    client("s3").create_bucket(Bucket=bucket)
    result = run("train", "--sagemaker", data, "--role", "rcyc-training-role", "--create-role", "--image", IMAGE,
                 "--bucket", bucket, "--json")
    assert result.exit_code == 0, result.stderr
    iam = client("iam")
    role = iam.get_role(RoleName="rcyc-training-role")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="rcyc-training-role", PolicyName="rcyc-training")["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ReadTrainingData"] == f"arn:aws:s3:::{DATA_BUCKET}/datasets/drawn/*"
    assert resources["WriteOutputAndCheckpoints"] == f"arn:aws:s3:::{bucket}/training/*"
    assert resources["PullTrainingImage"] == "arn:aws:ecr:us-east-1:123456789012:repository/rcyc-train"
    assert not any("Delete" in a or a.startswith("iam:") for s in policy["Statement"]
                   for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    job = json.loads(result.stdout)["job"]
    assert client("sagemaker").describe_training_job(TrainingJobName=job)["RoleArn"] == role["Arn"]


@pytest.mark.keras
@pytest.mark.slow  # TensorFlow: parity of the imported model, a bad model built and converted
def test_import_promotes_a_model_that_is_not_worse_and_refuses_a_worse_one(aws_on_moto, bucket, tmp_path, isolated_cache):
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow")
    from tests.e2e.test_promote_eval import always_boxes

    photos = tmp_path / "photos"
    drawings().write_folder(photos, 12, 7)
    assert run("upload-model", MODELS["one-vs-rest"], "--bucket", bucket, "--name", "live", "--version", "1", "--json").exit_code == 0
    s3 = client("s3")
    good_key, bad_key = "training/jobs/good/output/model.tar.gz", "training/jobs/bad/output/model.tar.gz"
    s3.put_object(Bucket=bucket, Key=good_key, Body=tarball(MODELS["softmax"]))
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    always_boxes(bad_dir / "boxes.h5")
    s3.put_object(Bucket=bucket, Key=bad_key, Body=tarball(bad_dir))

    refused = run("models", "import", f"s3://{bucket}/{bad_key}", "--name", "trained-bad", "--bucket", bucket,
                  "--promote", "--eval", photos, "--min-per-class", "7", "--json")
    assert refused.exit_code == ExitStatus.GATE_FAILED, refused.stderr
    verdict = json.loads(refused.stdout)
    assert verdict["promoted"] is False and verdict["gate"]["accuracy"] < verdict["gate"]["current_accuracy"]
    listing = json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)
    assert listing["current"]["name"] == "live"  # the pointer stayed
    assert "trained-bad" in {m["name"] for m in listing["models"]}  # but the version is uploaded, immutable

    accepted = run("models", "import", f"s3://{bucket}/{good_key}", "--name", "trained", "--bucket", bucket,
                   "--promote", "--eval", photos, "--min-per-class", "7", "--json")
    assert accepted.exit_code == 0, accepted.stderr
    assert json.loads(accepted.stdout)["promoted"] is True
    assert json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)["current"]["name"] == "trained"

    human = run("models", "import", f"s3://{bucket}/{bad_key}", "--name", "trained-bad", "--bucket", bucket,
                "--promote", "--eval", photos)
    assert human.exit_code == ExitStatus.GATE_FAILED and "not promoted" in human.stderr and "hint:" in human.stderr


@pytest.mark.parametrize("member", ["../escaped.txt", "/abs.txt", "link"])
def test_a_hostile_archive_is_refused_before_anything_is_written(aws_on_moto, tmp_path, member, bucket):
    client("s3").create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    archive = tmp_path / "job" / "model.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(buffer.getvalue())
    result = run("models", "import", archive, "--name", "evil", "--bucket", bucket)
    assert result.exit_code == ExitStatus.BAD_INPUT and "\nerror: " in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "job" / "escaped.txt").exists()
    assert "Contents" not in client("s3").list_objects_v2(Bucket=bucket)
    assert "outside" in result.stderr or "not a regular file" in result.stderr


def test_promote_needs_the_gate_and_a_bad_source_is_one_error_line(aws_on_moto, tmp_path):
    usage = run("models", "import", MODELS["softmax"], "--name", "x", "--bucket", BUCKET, "--promote")
    assert usage.exit_code == 2 and "--promote and --eval go together" in usage.stderr
    missing = run("models", "import", tmp_path / "nope.tar.gz", "--name", "x", "--bucket", BUCKET)
    assert missing.exit_code == ExitStatus.BAD_INPUT and "does not exist" in missing.stderr
    no_object = run("models", "import", f"s3://{BUCKET}/training/jobs/none/output/model.tar.gz", "--name", "x", "--bucket", BUCKET)
    assert no_object.exit_code == ExitStatus.BAD_INPUT and no_object.stderr.count("error: ") == 1 and "hint: " in no_object.stderr
