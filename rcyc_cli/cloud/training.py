"""SageMaker training jobs, the AWS side: the job's role and its least-privilege policy, the cost estimate,
the CreateTrainingJob request checked against SageMaker's own API model, the job created, followed (status
and log stream) to its end. Plain values in, plain values out: what a job trains and how its model comes
back is :mod:`rcyc_cli.train.jobs` (``rcyc train --sagemaker``).

Where things go in the models bucket: ``training/jobs/<job>/output/model.tar.gz`` (SageMaker's output
path) and ``training/checkpoints/`` (the content-addressed feature cache, synced by SageMaker: an
interrupted spot job, or the next job with more photos, starts with every feature already computed).
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from rcyc_core.errors import InputError

from ..reporting import SILENT, Reporter
from .buckets import parse_s3_uri

TRAINING_PREFIX = "training/"
JOBS_PREFIX = TRAINING_PREFIX + "jobs/"
CHECKPOINTS_PREFIX = TRAINING_PREFIX + "checkpoints/"
DEFAULT_ROLE = "rcyc-training-role"
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


def validate_request(params: dict) -> None:
    """The request against SageMaker's own API model (botocore's, on disk): no call is made."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise InputError(f"the CreateTrainingJob request is not valid: {report.generate_report()}")


def validate_values(data_uri: str, bucket: str, job_name: str | None, max_runtime: int, instance_type: str,
                    role: str) -> None:
    """The job's AWS-side values, checked before any call: one InputError line for the first bad one."""
    from . import buckets

    parse_s3_uri(data_uri)
    buckets.validate_bucket_name(bucket)
    if job_name is not None and not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", job_name):
        raise InputError(f"--job-name {job_name!r} is not a SageMaker job name", hint="Letters, digits and '-' (at most 63).")
    if not 60 <= max_runtime <= 28 * 24 * 3600:
        raise InputError(f"--max-runtime {max_runtime} is out of range (60 s to 28 days)")
    if instance_type not in _instance_types():
        raise InputError(f"--instance-type {instance_type!r} is not a SageMaker training instance type",
                         hint="e.g. ml.m5.xlarge or ml.g4dn.xlarge (the types CreateTrainingJob accepts).")
    if role.startswith("arn:"):
        if not re.fullmatch(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", role):
            raise InputError(f"--role {role!r} is not an IAM role ARN", hint="arn:aws:iam::ACCOUNT:role/NAME, or a role NAME.")
    elif not re.fullmatch(r"[\w+=,.@-]{1,64}", role):
        raise InputError(f"--role {role!r} is not an IAM role name", hint="Letters, digits and +=,.@_- (at most 64), or a role ARN.")


def _instance_types() -> list[str]:
    """The instance types CreateTrainingJob accepts, from botocore's SageMaker model on disk (no call)."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    return shape.members["ResourceConfig"].members["InstanceType"].enum


def check_partition(role: str, aws) -> None:
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


def role_arn(aws, role: str, *, create: bool, dry_run: bool, data_uri: str, bucket: str, repository: str | None,
             report: Reporter = SILENT) -> tuple[str, dict | None]:
    """(the job's role ARN, what was done): an ARN as given; a NAME read from IAM, or with ``create`` made
    (or brought back) to the least-privilege policy for ``data_uri``, ``bucket`` and the image ``repository``."""
    from .functions import ensure_role

    if role.startswith("arn:"):
        if create:
            raise InputError("--create-role takes a role name, not an ARN", hint="Pass --role NAME with --create-role.")
        return role, None
    if dry_run:
        account = "<account>"
        return f"arn:aws:iam::{account}:role/{role}", {"name": role, "action": "create or update" if create else "use"}
    iam = aws.client("iam")
    if create:
        report.status(f"role {role}")
        if repository is None:
            raise InputError("--create-role needs the training image in ECR (the role may pull from that repository only)",
                             hint="Drop --image (rcyc pushes its image to ECR) or give an ECR image URI.")
        policy = role_policy(data_uri, bucket, repository, aws.region, aws.account)
        made = ensure_role(iam, role, policy, trust=TRUST_POLICY, policy_name=ROLE_POLICY_NAME,
                           description="rcyc: a SageMaker training job's least-privilege role")
        return made["arn"], {**made, "policy": policy}
    from .aws import aws_call

    found = aws_call(f"read the role {role}", iam.get_role, RoleName=role)["Role"]
    return found["Arn"], {"name": role, "arn": found["Arn"], "action": "exists"}


def count_images(s3, data_uri: str) -> int:
    from .aws import aws_call
    from ..files import IMAGE_SUFFIXES

    bucket, prefix = parse_s3_uri(data_uri)
    pages = aws_call(f"list {data_uri}", lambda: list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)))
    return sum(1 for page in pages for obj in page.get("Contents", []) if Path(obj["Key"]).suffix.lower() in IMAGE_SUFFIXES)


def create_job(aws, params: dict, report: Reporter = SILENT) -> str:
    """CreateTrainingJob with a request :func:`validate_request` accepted; returns the job's ARN."""
    from .aws import aws_call

    name = params["TrainingJobName"]
    report.status(f"creating the training job {name}")
    return aws_call(f"create the training job {name}", aws.client("sagemaker").create_training_job, **params)["TrainingJobArn"]


def wait_for_job(aws, name: str, poll_seconds: float, report: Reporter = SILENT) -> dict:
    """Follow the job to its end (status changes and its log stream through ``report``); returns its last
    DescribeTrainingJob reply. A KeyboardInterrupt stops the following, not the job."""
    from .aws import aws_call

    sm, logs = aws.client("sagemaker"), aws.client("logs")
    tokens: dict[str, str | None] = {}
    last = None
    while True:
        job = aws_call(f"read the training job {name}", sm.describe_training_job, TrainingJobName=name)
        status = (job["TrainingJobStatus"], job.get("SecondaryStatus"))
        if status != last:
            report.status(f"{name}: {status[0]} ({status[1]})")
            last = status
        _read_logs(logs, name, tokens, report)
        if job["TrainingJobStatus"] in TERMINAL:
            return job
        time.sleep(poll_seconds)


def billed_usd(instance_type: str, billable_seconds: int | None) -> float | None:
    """What the billed seconds cost at the on-demand price (None when either is unknown)."""
    price = PRICES_PER_HOUR.get(instance_type)
    return round(price * billable_seconds / 3600, 4) if price and billable_seconds else None


def _forward(line: str, report: Reporter) -> None:
    match = re.match(r"rcyc-metric stage=(\w+) epoch=(\d+)/(\d+)", line)
    if match:
        report.stage(match[1], int(match[2]), int(match[3]))
    elif (match := re.match(r"rcyc (\w+) (\d+)/(\d+)$", line)):
        report.stage(match[1], int(match[2]), int(match[3]))
    elif line.strip():
        report.status(line.strip()[:200])


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
