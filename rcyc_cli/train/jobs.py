"""``rcyc train --sagemaker``: the training image into ECR (never pushed twice), a SageMaker training job
(``CreateTrainingJob``) on the photos in S3, its status and log followed, and on completion its model
imported into the bucket as a candidate (not promoted: ``rcyc models import --promote --eval`` or
``rcyc models promote --eval`` gate it). ``dry_run`` makes no call at all: it prints the request and the
estimated cost.

This is the orchestration: what the job trains (the container's contract, :mod:`.sagemaker`), its image
(:mod:`.container`) and its model coming back; the AWS calls themselves are :mod:`rcyc_cli.cloud.training`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rcyc_core.errors import InputError

from ..cloud import training
from ..defaults import (DEFAULT_BUCKET, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_INSTANCE_TYPE, DEFAULT_MAX_RUNTIME,
                        DEFAULT_MODEL_NAME, DEFAULT_TRAIN_REPOSITORY)
from ..reporting import SILENT, Reporter
from .container import TrainingFailed, hyperparameters_json
from .sagemaker import (
    CHECKPOINTS_LOCAL,
    DEFAULT_CHANNEL,
    METRIC_DEFINITIONS,
    parse_hyperparameters,
)


@dataclass
class JobOptions:
    data_uri: str
    role: str
    bucket: str = DEFAULT_BUCKET
    region: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    spot: bool = False
    max_runtime: int = DEFAULT_MAX_RUNTIME
    wait: bool = False
    dry_run: bool = False
    create_role: bool = False
    image: str | None = None  # a training image already in a registry: no build, no push
    repository: str = DEFAULT_TRAIN_REPOSITORY
    base_image: str | None = None
    ca_bundle: Path | None = None
    name: str = DEFAULT_MODEL_NAME
    hyperparameters: dict | None = None
    job_name: str | None = None
    poll_seconds: float = 15.0


def hyperparameters_strings(values: dict) -> dict:
    """SageMaker's HyperParameters: a map of strings (the container decodes and checks them)."""
    return json.loads(hyperparameters_json(values))


def request(options: JobOptions, image_uri: str, role_arn: str, name: str) -> dict:
    """The CreateTrainingJob request."""
    stopping = {"MaxRuntimeInSeconds": options.max_runtime}
    if options.spot:
        stopping["MaxWaitTimeInSeconds"] = 2 * options.max_runtime  # time to wait for spot capacity included
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File", "MetricDefinitions": METRIC_DEFINITIONS},
        "RoleArn": role_arn,
        "HyperParameters": hyperparameters_strings({"name": options.name, **(options.hyperparameters or {})}),
        "InputDataConfig": [{"ChannelName": DEFAULT_CHANNEL, "InputMode": "File", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": options.data_uri, "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{options.bucket}/{training.JOBS_PREFIX}"},
        "ResourceConfig": {"InstanceType": options.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": stopping,
        # Checkpoints always: the feature cache makes a restarted (spot) job and the next job cheaper.
        "CheckpointConfig": {"S3Uri": f"s3://{options.bucket}/{training.CHECKPOINTS_PREFIX}", "LocalPath": CHECKPOINTS_LOCAL},
        "EnableManagedSpotTraining": options.spot,
        "EnableNetworkIsolation": True,  # the image needs no network: its weights come with it
        "Tags": [{"Key": "rcyc:managed", "Value": "true"}],
    }


def _validate(options: JobOptions) -> None:
    training.validate_values(options.data_uri, options.bucket, options.job_name, options.max_runtime,
                             options.instance_type, options.role)
    if not options.data_uri.endswith("/"):
        options.data_uri += "/"
    # the job's hyperparameters as the container will read them: a value it would refuse fails here, not in a billed job
    parse_hyperparameters(hyperparameters_strings({"name": options.name, **(options.hyperparameters or {})}))
    if options.create_role and options.image and training.repository_arn(options.image) is None:
        raise InputError("--create-role needs the training image in ECR (the role may pull from that repository only)",
                         hint="Drop --image (rcyc pushes its image to ECR) or give an ECR image URI.")


def _image(options: JobOptions, aws, report: Reporter) -> tuple[str, dict]:
    """(image URI by digest, what was done): --image as given, else built and pushed unless ECR has it."""
    if options.image:
        return options.image, {"uri": options.image, "action": "given"}
    if options.dry_run:
        uri = f"<account>.dkr.ecr.{aws.region}.amazonaws.com/{options.repository}@<digest of the build>"
        return uri, {"uri": uri, "action": "build, then push unless ECR has it"}
    from .. import image as images
    from ..cloud.deploy import ensure_repository
    from ..cloud.registry import Registry, ecr_login, push
    from . import container

    client = images.engine()
    ecr = aws.client("ecr")
    repository = ensure_repository(ecr, options.repository)
    built = container.build(client, f"{options.repository}:local", options.base_image, options.ca_bundle, report=report)
    host, user, password = ecr_login(ecr)
    tag = "train-" + built.image_id.split(":")[-1][:16]  # content-derived: the same image is never pushed twice
    pushed = push(client, built.image_id, Registry(host, user, password, source="ecr"), options.repository, tag, report=report)
    uri = f"{repository['uri']}@{pushed.digest}"
    return uri, {"uri": uri, "action": "pushed" if pushed.pushed else "already pushed", "tag": tag,
                 "repository": repository}


def _role(options: JobOptions, aws, repository: str | None, report: Reporter) -> tuple[str, dict | None]:
    return training.role_arn(aws, options.role, create=options.create_role, dry_run=options.dry_run,
                             data_uri=options.data_uri, bucket=options.bucket, repository=repository, report=report)


def submit(options: JobOptions, report: Reporter = SILENT) -> dict:
    """Create the training job (or, with ``dry_run``, only say what would be sent and what it would cost)."""
    from ..cloud.aws import Aws

    _validate(options)
    name = options.job_name or training.job_name()
    fine_tune_epochs = 0
    hp = options.hyperparameters or {}
    if str(hp.get("fine_tune", "")).lower() in ("true", "1"):
        fine_tune_epochs = int(hp.get("fine_tune_epochs", DEFAULT_FINE_TUNE_EPOCHS))
    aws = Aws(options.region)  # reads the configuration only; no call
    training.check_partition(options.role, aws)
    if options.dry_run:
        image_uri, image = _image(options, aws, report)
        role_arn, role = _role(options, aws, None, report)
        params = request(options, image_uri, role_arn, name)
        training.validate_request({**params, "RoleArn": "arn:aws:iam::123456789012:role/" + options.role.rsplit("/", 1)[-1],
                                   "AlgorithmSpecification": {**params["AlgorithmSpecification"], "TrainingImage": "image"}})
        return {"dry_run": True, "request": params, "image": image, "role": role,
                "estimate": training.estimate(options.instance_type, options.max_runtime, options.spot, None, fine_tune_epochs)}
    report.status(f"reading {options.data_uri}")
    images = training.count_images(aws.client("s3"), options.data_uri)
    if images == 0:
        raise InputError(f"no photos under {options.data_uri}", hint="Upload DATA_DIR/<label>/<photo> under that prefix first "
                                                                   "(aws s3 sync DATA_DIR s3://BUCKET/datasets/NAME/).")
    image_uri, image = _image(options, aws, report)
    role_arn, role = _role(options, aws, training.repository_arn(image_uri), report)
    params = request(options, image_uri, role_arn, name)
    training.validate_request(params)
    arn = training.create_job(aws, params, report)
    summary = {"dry_run": False, "job": name, "arn": arn, "request": params, "image": image, "role": role,
               "estimate": training.estimate(options.instance_type, options.max_runtime, options.spot, images, fine_tune_epochs)}
    if options.wait:
        summary.update(follow(aws, name, options, report))
    return summary


def follow(aws, name: str, options: JobOptions, report: Reporter = SILENT) -> dict:
    """Follow the job to its end (status and log stream); on completion import its model as a candidate."""
    from ..cloud.imports import import_model

    try:
        job = training.wait_for_job(aws, name, options.poll_seconds, report)
    except KeyboardInterrupt:
        # rcyc stops following; the job is SageMaker's and goes on (and is billed) until it ends or is stopped.
        report.notice(f"the training job {name} keeps running in SageMaker; stop it with: aws sagemaker "
                      f"stop-training-job --training-job-name {name}; import its model when it completes with: rcyc models "
                      f"import s3://{options.bucket}/{training.JOBS_PREFIX}{name}/output/model.tar.gz --name {options.name}")
        raise
    billed = job.get("BillableTimeInSeconds")
    result = {"status": job["TrainingJobStatus"], "billable_seconds": billed,
              "billed_usd_on_demand": training.billed_usd(options.instance_type, billed)}
    if job["TrainingJobStatus"] != "Completed":
        raise TrainingFailed(f"the training job {name} ended {job['TrainingJobStatus']}: {job.get('FailureReason') or 'no reason given'}",
                             hint="Its log is above (CloudWatch: /aws/sagemaker/TrainingJobs); fix the data or options and run again.")
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    result["model_artifacts"] = model_uri
    result["candidate"] = import_model(model_uri, options.bucket, options.name, region=aws.region, report=report)
    return result
