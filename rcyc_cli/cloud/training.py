"""``rcyc train --sagemaker``: the training image into ECR (never pushed twice), a SageMaker training job
(``CreateTrainingJob``) on the photos in S3, its status and log followed, and on completion its model
imported into the bucket as a candidate (not promoted: ``rcyc models import --promote --eval`` or
``rcyc models promote --eval`` gate it). ``dry_run`` makes no call at all: it prints the request and the
estimated cost.

Where things go in the models bucket: ``training/jobs/<job>/output/model.tar.gz`` (SageMaker's output
path) and ``training/checkpoints/`` (the content-addressed feature cache, synced by SageMaker: an
interrupted spot job, or the next job with more photos, starts with every feature already computed).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from rcyc_core.errors import InputError

from ..defaults import DEFAULT_BUCKET
from ..reporting import SILENT, Reporter
from .buckets import parse_s3_uri

TRAINING_PREFIX = "training/"
JOBS_PREFIX = TRAINING_PREFIX + "jobs/"
CHECKPOINTS_PREFIX = TRAINING_PREFIX + "checkpoints/"
DEFAULT_REPOSITORY = "rcyc-train"
DEFAULT_ROLE = "rcyc-training-role"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_MAX_RUNTIME = 3600
ROLE_POLICY_NAME = "rcyc-training"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRUST_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

# SageMaker Training, on-demand, US East (N. Virginia), USD per instance-hour, from the public price list
# (aws.amazon.com/sagemaker/pricing, "Training" tab), read for this release; other regions cost a little more.
PRICES_PER_HOUR = {
    "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922,
    "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408, "ml.c5.4xlarge": 0.816, "ml.g4dn.xlarge": 0.736,
}
# The expected time of a job (from docs/train.md's figures on 2 cores, rounded up): start-up (the ~1.9 GB
# image pulled, the backbone converted) and export, then per photo the features, and per photo and epoch
# the fine-tuning. Provisioning the instance is not billed.
STARTUP_SECONDS = 180
SECONDS_PER_IMAGE = 0.015
FINE_TUNE_SECONDS_PER_IMAGE_EPOCH = 0.06
TERMINAL = ("Completed", "Failed", "Stopped")


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
    repository: str = DEFAULT_REPOSITORY
    base_image: str | None = None
    ca_bundle: Path | None = None
    name: str = "rcyc-efficientnet-lite0"
    hyperparameters: dict | None = None
    job_name: str | None = None
    poll_seconds: float = 15.0


def job_name(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"rcyc-train-{stamp}-{secrets.token_hex(3)}"


def role_policy(data_uri: str, bucket: str, repository_arn: str, region: str, account: str) -> dict:
    """Least privilege for the job: read the data prefix, write its output and checkpoints, pull its image,
    write its own logs and metrics. Nothing else (no other bucket, no IAM, no deletes)."""
    data_bucket, data_prefix = parse_s3_uri(data_uri)
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadTrainingData", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{data_bucket}/{data_prefix}*"},
        {"Sid": "ListTrainingData", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{data_bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{data_prefix}*"]}}},
        {"Sid": "WriteOutputAndCheckpoints", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/{TRAINING_PREFIX}*"},
        {"Sid": "ListCheckpoints", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{CHECKPOINTS_PREFIX}*"]}}},
        {"Sid": "PullTrainingImage", "Effect": "Allow",
         "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": repository_arn},
        {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                                         "logs:DescribeLogStreams"],
         "Resource": f"arn:aws:logs:{region}:{account}:log-group:{LOG_GROUP}:*"},
        {"Sid": "OwnMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}},
    ]}


def estimate(instance_type: str, max_runtime: int, spot: bool = False, images: int | None = None,
             fine_tune_epochs: int = 0) -> dict:
    """The job's cost at the public on-demand price: at most (max runtime), and expected (from the photo
    count when known). Managed spot bills less (typically 60-90% off); the on-demand figure is the bound."""
    price = PRICES_PER_HOUR.get(instance_type)
    per_image = SECONDS_PER_IMAGE + FINE_TUNE_SECONDS_PER_IMAGE_EPOCH * fine_tune_epochs
    expected = None if images is None else round(STARTUP_SECONDS + per_image * images)
    usd = (lambda seconds: None if price is None or seconds is None else round(price * seconds / 3600, 4))
    return {"instance_type": instance_type, "usd_per_hour": price, "price_source": "SageMaker Training on-demand, us-east-1",
            "max_seconds": max_runtime, "max_usd": usd(max_runtime), "images": images, "expected_seconds": expected,
            "expected_usd": usd(expected), "usd_per_1000_images": usd(per_image * 1000), "startup_usd": usd(STARTUP_SECONDS),
            "spot": spot, "note": None if price else f"no price on file for {instance_type}: see the SageMaker pricing page"}


def hyperparameters_strings(values: dict) -> dict:
    """SageMaker's HyperParameters: a map of strings (the container decodes and checks them)."""
    import json

    from ..train.container import hyperparameters_json

    return json.loads(hyperparameters_json(values))


def request(options: JobOptions, image_uri: str, role_arn: str, name: str) -> dict:
    """The CreateTrainingJob request."""
    from ..train.sagemaker import CHECKPOINTS_LOCAL, DEFAULT_CHANNEL, METRIC_DEFINITIONS

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
        "OutputDataConfig": {"S3OutputPath": f"s3://{options.bucket}/{JOBS_PREFIX}"},
        "ResourceConfig": {"InstanceType": options.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": stopping,
        # Checkpoints always: the feature cache makes a restarted (spot) job and the next job cheaper.
        "CheckpointConfig": {"S3Uri": f"s3://{options.bucket}/{CHECKPOINTS_PREFIX}", "LocalPath": CHECKPOINTS_LOCAL},
        "EnableManagedSpotTraining": options.spot,
        "EnableNetworkIsolation": True,  # the image needs no network: its weights come with it
        "Tags": [{"Key": "rcyc:managed", "Value": "true"}],
    }


def validate_request(params: dict) -> None:
    """The request against SageMaker's own API model (botocore's, on disk): no call is made."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise InputError(f"the CreateTrainingJob request is not valid: {report.generate_report()}")


def _validate(options: JobOptions) -> None:
    from . import buckets

    parse_s3_uri(options.data_uri)
    buckets.validate_bucket_name(options.bucket)
    if not options.data_uri.endswith("/"):
        options.data_uri += "/"
    if options.job_name is not None and not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", options.job_name):
        raise InputError(f"--job-name {options.job_name!r} is not a SageMaker job name", hint="Letters, digits and '-' (at most 63).")
    if not 60 <= options.max_runtime <= 28 * 24 * 3600:
        raise InputError(f"--max-runtime {options.max_runtime} is out of range (60 s to 28 days)")
    if options.instance_type not in _instance_types():
        raise InputError(f"--instance-type {options.instance_type!r} is not a SageMaker training instance type",
                         hint="e.g. ml.m5.xlarge or ml.g4dn.xlarge (the types CreateTrainingJob accepts).")
    if options.role.startswith("arn:"):
        if not re.fullmatch(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", options.role):
            raise InputError(f"--role {options.role!r} is not an IAM role ARN", hint="arn:aws:iam::ACCOUNT:role/NAME, or a role NAME.")
    elif not re.fullmatch(r"[\w+=,.@-]{1,64}", options.role):
        raise InputError(f"--role {options.role!r} is not an IAM role name", hint="Letters, digits and +=,.@_- (at most 64), or a role ARN.")
    # the job's hyperparameters as the container will read them: a value it would refuse fails here, not in a billed job
    from ..train.sagemaker import parse_hyperparameters

    parse_hyperparameters(hyperparameters_strings({"name": options.name, **(options.hyperparameters or {})}))
    if options.create_role and options.image and repository_arn(options.image) is None:
        raise InputError("--create-role needs the training image in ECR (the role may pull from that repository only)",
                         hint="Drop --image (rcyc pushes its image to ECR) or give an ECR image URI.")


def _instance_types() -> list[str]:
    """The instance types CreateTrainingJob accepts, from botocore's SageMaker model on disk (no call)."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    return shape.members["ResourceConfig"].members["InstanceType"].enum


def _check_partition(role: str, aws) -> None:
    """A role ARN from another partition (aws-cn, aws-us-gov) than the region's cannot be passed to the job."""
    if not role.startswith("arn:"):
        return
    try:
        partition = aws.session.get_partition_for_region(aws.region)
    except Exception:  # an unknown or unset region: SageMaker will say
        return
    if role.split(":")[1] != partition:
        raise InputError(f"--role {role} is in the partition {role.split(':')[1]}, the region {aws.region} in {partition}",
                         hint=f"Give a role of the region's partition (arn:{partition}:iam::ACCOUNT:role/NAME).")


def repository_arn(image_uri: str) -> str | None:
    """The ECR repository's ARN of an image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:tag|@digest])."""
    match = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9._/-]+?)(?:[:@].*)?", image_uri)
    return f"arn:aws:ecr:{match[2]}:{match[1]}:repository/{match[3]}" if match else None


def _role_arn(options: JobOptions, aws, repository: str | None, report: Reporter) -> tuple[str, dict | None]:
    from .functions import ensure_role

    if options.role.startswith("arn:"):
        if options.create_role:
            raise InputError("--create-role takes a role name, not an ARN", hint="Pass --role NAME with --create-role.")
        return options.role, None
    if options.dry_run:
        account = "<account>"
        return f"arn:aws:iam::{account}:role/{options.role}", {"name": options.role, "action": "create or update" if options.create_role else "use"}
    iam = aws.client("iam")
    if options.create_role:
        report.status(f"role {options.role}")
        if repository is None:
            raise InputError("--create-role needs the training image in ECR (the role may pull from that repository only)",
                             hint="Drop --image (rcyc pushes its image to ECR) or give an ECR image URI.")
        policy = role_policy(options.data_uri, options.bucket, repository, aws.region, aws.account)
        role = ensure_role(iam, options.role, policy, trust=TRUST_POLICY, policy_name=ROLE_POLICY_NAME,
                           description="rcyc: a SageMaker training job's least-privilege role")
        return role["arn"], {**role, "policy": policy}
    from .aws import aws_call

    found = aws_call(f"read the role {options.role}", iam.get_role, RoleName=options.role)["Role"]
    return found["Arn"], {"name": options.role, "arn": found["Arn"], "action": "exists"}


def _image(options: JobOptions, aws, report: Reporter) -> tuple[str, dict]:
    """(image URI by digest, what was done): --image as given, else built and pushed unless ECR has it."""
    if options.image:
        return options.image, {"uri": options.image, "action": "given"}
    if options.dry_run:
        uri = f"<account>.dkr.ecr.{aws.region}.amazonaws.com/{options.repository}@<digest of the build>"
        return uri, {"uri": uri, "action": "build, then push unless ECR has it"}
    from .. import image as images
    from ..train import container
    from .deploy import ensure_repository
    from .registry import Registry, ecr_login, push

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


def _count_images(s3, data_uri: str) -> int:
    from .aws import aws_call
    from ..files import IMAGE_SUFFIXES

    bucket, prefix = parse_s3_uri(data_uri)
    pages = aws_call(f"list {data_uri}", lambda: list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)))
    return sum(1 for page in pages for obj in page.get("Contents", []) if Path(obj["Key"]).suffix.lower() in IMAGE_SUFFIXES)


def submit(options: JobOptions, report: Reporter = SILENT) -> dict:
    """Create the training job (or, with ``dry_run``, only say what would be sent and what it would cost)."""
    from .aws import Aws, aws_call

    _validate(options)
    name = options.job_name or job_name()
    fine_tune_epochs = 0
    hp = options.hyperparameters or {}
    if str(hp.get("fine_tune", "")).lower() in ("true", "1"):
        fine_tune_epochs = int(hp.get("fine_tune_epochs", 3))
    aws = Aws(options.region)  # reads the configuration only; no call
    _check_partition(options.role, aws)
    if options.dry_run:
        image_uri, image = _image(options, aws, report)
        role_arn, role = _role_arn(options, aws, None, report)
        params = request(options, image_uri, role_arn, name)
        validate_request({**params, "RoleArn": "arn:aws:iam::123456789012:role/" + options.role.rsplit("/", 1)[-1],
                          "AlgorithmSpecification": {**params["AlgorithmSpecification"], "TrainingImage": "image"}})
        return {"dry_run": True, "request": params, "image": image, "role": role,
                "estimate": estimate(options.instance_type, options.max_runtime, options.spot, None, fine_tune_epochs)}
    s3 = aws.client("s3")
    report.status(f"reading {options.data_uri}")
    images = _count_images(s3, options.data_uri)
    if images == 0:
        raise InputError(f"no photos under {options.data_uri}", hint="Upload DATA_DIR/<label>/<photo> under that prefix first "
                                                                   "(aws s3 sync DATA_DIR s3://BUCKET/datasets/NAME/).")
    image_uri, image = _image(options, aws, report)
    role_arn, role = _role_arn(options, aws, repository_arn(image_uri), report)
    params = request(options, image_uri, role_arn, name)
    validate_request(params)
    sm = aws.client("sagemaker")
    report.status(f"creating the training job {name}")
    arn = aws_call(f"create the training job {name}", sm.create_training_job, **params)["TrainingJobArn"]
    summary = {"dry_run": False, "job": name, "arn": arn, "request": params, "image": image, "role": role,
               "estimate": estimate(options.instance_type, options.max_runtime, options.spot, images, fine_tune_epochs)}
    if options.wait:
        summary.update(follow(aws, name, options, report))
    return summary


def _forward(line: str, report: Reporter) -> None:
    match = re.match(r"rcyc-metric stage=(\w+) epoch=(\d+)/(\d+)", line)
    if match:
        report.stage(match[1], int(match[2]), int(match[3]))
    elif (match := re.match(r"rcyc (\w+) (\d+)/(\d+)$", line)):
        report.stage(match[1], int(match[2]), int(match[3]))
    elif line.strip():
        report.status(line.strip()[:200])


def follow(aws, name: str, options: JobOptions, report: Reporter = SILENT) -> dict:
    """Follow the job to its end (status and log stream); on completion import its model as a candidate."""
    from .aws import aws_call
    from .imports import import_model
    from ..train.container import TrainingFailed

    sm, logs = aws.client("sagemaker"), aws.client("logs")
    tokens: dict[str, str | None] = {}
    last = None
    try:
        while True:
            job = aws_call(f"read the training job {name}", sm.describe_training_job, TrainingJobName=name)
            status = (job["TrainingJobStatus"], job.get("SecondaryStatus"))
            if status != last:
                report.status(f"{name}: {status[0]} ({status[1]})")
                last = status
            _read_logs(logs, name, tokens, report)
            if job["TrainingJobStatus"] in TERMINAL:
                break
            time.sleep(options.poll_seconds)
    except KeyboardInterrupt:
        # rcyc stops following; the job is SageMaker's and goes on (and is billed) until it ends or is stopped.
        report.notice(f"the training job {name} keeps running in SageMaker; stop it with: aws sagemaker "
                      f"stop-training-job --training-job-name {name}; import its model when it completes with: rcyc models "
                      f"import s3://{options.bucket}/{JOBS_PREFIX}{name}/output/model.tar.gz --name {options.name}")
        raise
    billed = job.get("BillableTimeInSeconds")
    price = PRICES_PER_HOUR.get(options.instance_type)
    result = {"status": job["TrainingJobStatus"], "billable_seconds": billed,
              "billed_usd_on_demand": round(price * billed / 3600, 4) if price and billed else None}
    if job["TrainingJobStatus"] != "Completed":
        raise TrainingFailed(f"the training job {name} ended {job['TrainingJobStatus']}: {job.get('FailureReason') or 'no reason given'}",
                             hint="Its log is above (CloudWatch: /aws/sagemaker/TrainingJobs); fix the data or options and run again.")
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    result["model_artifacts"] = model_uri
    result["candidate"] = import_model(model_uri, options.bucket, options.name, region=aws.region, report=report)
    return result


def _read_logs(logs, name: str, tokens: dict, report: Reporter) -> None:
    from rcyc_core.errors import AwsError

    from .aws import aws_call

    try:
        streams = aws_call("read the job's log streams", logs.describe_log_streams, logGroupName=LOG_GROUP,
                           logStreamNamePrefix=f"{name}/")["logStreams"]
        for stream in streams:
            stream_name = stream["logStreamName"]
            args = {"logGroupName": LOG_GROUP, "logStreamName": stream_name, "startFromHead": True}
            if tokens.get(stream_name):
                args["nextToken"] = tokens[stream_name]
            reply = aws_call("read the job's log", logs.get_log_events, **args)
            for event in reply.get("events", []):
                _forward(event.get("message", ""), report)
            tokens[stream_name] = reply.get("nextForwardToken")
    except AwsError as exc:
        if exc.kind != "ResourceNotFoundException":
            raise  # no log group yet (the job has not started): nothing to read
