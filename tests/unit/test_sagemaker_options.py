"""The SageMaker side without AWS: the training image's build context, the cost estimate, the ECR
repository of an image URI, following a job that fails (its FailureReason becomes the error, exit 3), and
the options that do not go together."""

from __future__ import annotations

import tarfile

import pytest

from rcyc_cli.cloud import training
from rcyc_cli.train import jobs
from tests.cli import run


def test_the_training_context_holds_the_core_and_its_reference_photos_only():
    from rcyc_cli.train import container

    with tarfile.open(fileobj=container.build_context()) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()
    assert "rcyc_cli.train.sagemaker" in dockerfile and 'CMD ["train"]' in dockerfile
    assert {"rcyc_cli/train/sagemaker.py", "rcyc_cli/train/pipeline.py", "lambda/rcyc_core/preprocess.py",
            "fixtures/train/golden.json", "fixtures/train/chelsea.png"} <= names
    assert not any(n.startswith(("tests/", "fixtures/models", "fixtures/images")) or "__pycache__" in n for n in names)
    assert ".build/ca-bundle.crt" not in names


def test_the_estimate_is_the_public_price_times_the_time():
    cost = training.estimate("ml.m5.xlarge", 3600, images=500)
    assert cost["max_usd"] == 0.23 and cost["expected_seconds"] == 188 and cost["expected_usd"] == round(0.23 * 188 / 3600, 4)
    tuned = training.estimate("ml.m5.xlarge", 3600, images=10_000, fine_tune_epochs=3)
    assert tuned["expected_seconds"] == 180 + round(10_000 * (0.015 + 0.18))
    unknown = training.estimate("ml.p5.48xlarge", 3600)
    assert unknown["max_usd"] is None and "no price" in unknown["note"]


def test_the_repository_of_an_image_uri():
    assert training.repository_arn("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/rcyc-train@sha256:" + "0" * 64) == \
        "arn:aws:ecr:eu-west-1:123456789012:repository/team/rcyc-train"
    assert training.repository_arn("123456789012.dkr.ecr.us-east-1.amazonaws.com/rcyc-train:v1").endswith("/rcyc-train")
    assert training.repository_arn("registry.example/rcyc-train:v1") is None


class _Stub:
    def __init__(self, replies):
        self.replies = list(replies)

    def describe_training_job(self, **kwargs):
        return self.replies.pop(0)

    def describe_log_streams(self, **kwargs):
        return {"logStreams": [{"logStreamName": "job/algo-1"}]}

    def get_log_events(self, **kwargs):
        return {"events": [{"message": "rcyc-metric stage=head epoch=1/3 loss=0.5"}], "nextForwardToken": "t"}


class _Aws:
    region = "us-east-1"

    def __init__(self, replies):
        self.stub = _Stub(replies)

    def client(self, service):
        return self.stub


def test_following_a_failed_job_raises_its_failure_reason():
    from rcyc_cli.reporting import Reporter
    from rcyc_cli.train.container import TrainingFailed

    stages = []
    aws = _Aws([{"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
                {"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": "no data channel 'training'"}])
    options = jobs.JobOptions("s3://data/x/", "arn:aws:iam::123456789012:role/r", poll_seconds=0)
    with pytest.raises(TrainingFailed, match="ended Failed: no data channel 'training'"):
        jobs.follow(aws, "job", options, Reporter(stage=lambda *a: stages.append(a)))
    assert ("head", 1, 3) in stages


@pytest.mark.parametrize("args, message", [
    (["train", "d", "--out", "o", "--local-mode", "--upload"], "--upload and --report go with a local run"),
    (["train", "d", "--sagemaker", "s3://data-bucket/p/", "--role", "r"], "drop DATA_DIR"),
    (["train", "--sagemaker", "s3://data-bucket/p/"], "--sagemaker needs --role"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "r", "--job-name", "bad_name", "--dry-run"], "not a SageMaker job name"),
    (["train", "--sagemaker", "b/p", "--role", "r", "--dry-run"], "not an s3:// URI"),
    # a dry run must refuse what the real run (or SageMaker) would refuse
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "r", "--instance-type", "ml.nope.huge", "--dry-run"],
     "not a SageMaker training instance type"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "arn:nonsense", "--dry-run"], "not an IAM role ARN"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "arn:aws:iam::123:role/r", "--dry-run"], "not an IAM role ARN"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "bad role!", "--dry-run"], "not an IAM role name"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "arn:aws-cn:iam::123456789012:role/r", "--dry-run"],
     "in the partition aws-cn"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "r", "--create-role", "--image", "registry.example/x:1",
      "--dry-run"], "--create-role needs the training image in ECR"),
    (["train", "--sagemaker", "s3://data-bucket/p/", "--role", "r", "--name", "../x", "--dry-run"], "hyperparameter name="),
])
def test_options_that_do_not_go_together_are_one_error_line(args, message, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    result = run(*args)
    assert result.exit_code in (2, 3) and message in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_while_following_says_the_job_keeps_running_and_how_to_stop_it():
    from rcyc_cli.reporting import Reporter

    class Interrupting(_Stub):
        def describe_training_job(self, **kwargs):
            raise KeyboardInterrupt

    aws = _Aws([])
    aws.stub = Interrupting([])
    notices = []
    options = jobs.JobOptions("s3://data/x/", "arn:aws:iam::123456789012:role/r", bucket="models-bucket", poll_seconds=0)
    with pytest.raises(KeyboardInterrupt):
        jobs.follow(aws, "job-7", options, Reporter(notice=notices.append))
    assert "keeps running" in notices[0] and "stop-training-job --training-job-name job-7" in notices[0]
    assert "s3://models-bucket/training/jobs/job-7/output/model.tar.gz" in notices[0]


@pytest.mark.parametrize("data", ["missing", "a file", "no photos"])
def test_local_mode_refuses_unusable_photos_before_it_needs_the_engine(tmp_path, monkeypatch, data):
    # no engine answers: before the fix this was "no Docker engine" (exit 4); with one, a build of minutes first
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    path = tmp_path / "photos"
    if data == "a file":
        path.write_bytes(b"x")
    elif data == "no photos":
        path.mkdir()
    result = run("train", path, "--out", tmp_path / "model", "--local-mode")
    assert result.exit_code == 3, result.output
    assert "Docker" not in result.stderr


def test_a_checkpoint_dir_that_is_a_file_is_bad_input(tmp_path):
    from rcyc_cli.train.container import stage
    from rcyc_core.errors import InputError

    (tmp_path / "photos").mkdir()
    (tmp_path / "ckpt").write_bytes(b"x")
    with pytest.raises(InputError, match="checkpoint directory"):
        stage(tmp_path / "photos", {}, tmp_path / "ckpt")
