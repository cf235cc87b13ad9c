"""``rcyc deploy``: build, push (unless the registry has the image), then create or update the function
by digest, with its role and (optionally) its S3 trigger. With ``dry_run``, only reads: the summary is the plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core.config import function_environment
from rcyc_core.errors import AwsError, InputError
from rcyc_core.s3 import NOT_FOUND_CODES, client_error_code

from ..defaults import (DEFAULT_BASE_IMAGE, DEFAULT_BUCKET, DEFAULT_FLAVOR, DEFAULT_FUNCTION, DEFAULT_MEMORY,
                        DEFAULT_REFRESH_SECONDS, DEFAULT_REPOSITORY, DEFAULT_RESULTS_PREFIX, DEFAULT_TIMEOUT, MODELS_PREFIX,
                        POINTER_KEY)
from ..reporting import SILENT, Reporter
from . import buckets, store
from .aws import Aws, aws_call, translate
from .functions import add_trigger, ensure_function, ensure_role, role_policy
from .invoke import invoke
from .registry import Registry, ecr_login, push, remote_image


@dataclass
class DeployOptions:
    tag: str
    bucket: str = DEFAULT_BUCKET
    function: str = DEFAULT_FUNCTION
    repository: str = DEFAULT_REPOSITORY
    role_name: str | None = None
    region: str | None = None
    image: str | None = None  # deploy this local image instead of building one
    flavor: str = DEFAULT_FLAVOR
    base_image: str | None = None
    platform: str | None = None
    ca_bundle: Path | None = None
    memory: int = DEFAULT_MEMORY
    timeout: int = DEFAULT_TIMEOUT
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS
    registry: str | None = None
    registry_username: str | None = field(default=None, repr=False)
    registry_password: str | None = field(default=None, repr=False)
    force_tag: bool = False
    trigger: str | None = None
    results_prefix: str = DEFAULT_RESULTS_PREFIX
    dry_run: bool = False
    smoke: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return "arm64" if self.platform and "arm64" in self.platform else "x86_64"



def _validate(options: DeployOptions) -> None:
    buckets.validate_bucket_name(options.bucket)
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", options.tag):
        raise InputError(f"--tag {options.tag!r} is not a valid image tag", hint="Use letters, digits, '_', '.', '-' (at most 128).")
    if not re.match(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$", options.repository):
        raise InputError(f"--repository {options.repository!r} is not a valid repository name", hint="Use lower-case letters, digits and . _ - /.")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", options.function):
        raise InputError(f"--function {options.function!r} is not a valid function name", hint="Use letters, digits, '-' and '_' (at most 64).")
    if options.trigger is not None:
        trigger, results = options.trigger, options.results_prefix
        if not results or results.startswith(trigger) or trigger.startswith(results):
            raise InputError(f"the results prefix {results!r} and the trigger prefix {trigger!r} overlap: results would trigger the function",
                             hint="Pick a --results-prefix outside the --trigger prefix.")
        if trigger.startswith(MODELS_PREFIX):
            raise InputError("--trigger must not be under models/", hint="Use an image prefix such as incoming/.")



def _registry(options: DeployOptions, ecr) -> Registry:
    username = options.registry_username
    password = options.registry_password
    override = re.sub(r"^[a-z]+://", "", options.registry).rstrip("/") if options.registry else None
    if override and username is not None:
        return Registry(override, username, password or "", source="basic")
    host, token_user, token_password = ecr_login(ecr)
    return Registry(override or host, token_user, token_password, source="ecr")



def ensure_repository(ecr, name: str, dry_run: bool = False) -> dict:
    from botocore.exceptions import ClientError

    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        return {"name": name, "uri": repo["repositoryUri"], "action": "exists",
                "scan_on_push": repo.get("imageScanningConfiguration", {}).get("scanOnPush")}
    except ClientError as exc:
        if client_error_code(exc) != "RepositoryNotFoundException":
            raise translate(f"read the repository {name}", exc) from None
    if dry_run:
        return {"name": name, "uri": None, "action": "create", "scan_on_push": True}
    repo = aws_call(f"create the repository {name}", ecr.create_repository, repositoryName=name,
                    imageScanningConfiguration={"scanOnPush": True}, imageTagMutability="MUTABLE",
                    tags=[{"Key": "rcyc:managed", "Value": "true"}])["repository"]
    return {"name": name, "uri": repo["repositoryUri"], "action": "created", "scan_on_push": True}



def local_image(client, options: DeployOptions, report: Reporter, build: bool = True):
    """(image id, how it was obtained) of the image to deploy: --image as is, or the build (a cache hit
    when nothing changed). Without ``build``, the previous build's tag if there is one."""
    from docker.errors import ImageNotFound

    from .. import image as images

    if options.image:
        try:
            return client.images.get(options.image).id, f"local image {options.image}"
        except ImageNotFound:
            raise InputError(f"no local image {options.image}", hint="Build it (rcyc build) or drop --image.") from None
    local_tag = f"{options.repository}:{options.tag}"
    if not build:
        try:
            return client.images.get(local_tag).id, f"built earlier as {local_tag} (a rebuild may change it)"
        except ImageNotFound:
            return None, f"to be built as {local_tag}"
    report.status(f"building {local_tag} ({options.flavor})")
    result = images.build(client, local_tag, options.flavor, options.base_image or DEFAULT_BASE_IMAGE,
                              options.platform, options.ca_bundle, on_step=report.build_step)
    how = "cache hit: nothing rebuilt" if result.cache_hit else f"built in {result.seconds:.1f} s"
    return result.image_id, f"{local_tag} ({how})"



def deploy(options: DeployOptions, report: Reporter = SILENT) -> dict:
    """Build, push (unless the registry has it), then create or update the function by digest. With
    ``dry_run``, only read: the summary is the plan."""
    from .. import image as images

    _validate(options)
    dry = options.dry_run
    client = images.engine()  # a missing engine fails before anything is created in AWS
    aws = Aws(options.region)
    ecr, lam, iam, s3 = aws.client("ecr"), aws.client("lambda"), aws.client("iam"), aws.client("s3")
    summary: dict = {"dry_run": dry, "region": aws.region, "bucket": options.bucket, "warnings": []}

    report.status(f"checking bucket {options.bucket}")
    try:
        aws_call(f"find bucket {options.bucket}", s3.head_bucket, Bucket=options.bucket)
    except AwsError as exc:
        if exc.kind in NOT_FOUND_CODES:
            raise AwsError(f"the bucket {options.bucket} does not exist", kind="NoSuchBucket",
                           hint="rcyc upload-model creates it (private) and puts the model in it; then deploy.") from None
        raise
    buckets.refuse_if_public(s3, options.bucket)
    if store.read_pointer(s3, options.bucket) is None:
        summary["warnings"].append(f"s3://{options.bucket}/{POINTER_KEY} does not exist yet: run rcyc upload-model "
                                   "before invoking the function")

    summary["repository"] = ensure_repository(ecr, options.repository, dry)
    registry = _registry(options, ecr)
    summary["registry"] = registry.describe()

    image_id, how = local_image(client, options, report, build=not dry)
    image = {"local": how, "image_id": image_id, "tag": options.tag,
             "reference": f"{registry.host}/{options.repository}:{options.tag}"}
    summary["image"] = image
    image_uri = None
    if dry:
        remote = remote_image(registry, options.repository, options.tag)
        if remote is None:
            image["action"] = "push"
        elif image_id and remote.config_digest == image_id:
            image.update(action="nothing (already pushed)", digest=remote.digest)
        else:
            image.update(action="refuse: the tag names another image" if not options.force_tag else "push (--force-tag moves the tag)",
                         digest=remote.digest)
        if remote is not None and summary["repository"]["uri"] and image["action"].startswith("nothing"):
            image_uri = f"{summary['repository']['uri']}@{remote.digest}"
    else:
        result = push(client, image_id, registry, options.repository, options.tag, options.force_tag, report)
        image.update(action="pushed" if result.pushed else "already pushed", digest=result.digest,
                     layers_pushed=result.layers_pushed, layers_existing=result.layers_existing)
        image_uri = f"{summary['repository']['uri']}@{result.digest}"
    image["uri"] = image_uri

    results_prefix = options.results_prefix if options.trigger is not None else None
    policy = role_policy(options.bucket, results_prefix, options.trigger)
    role_name = options.role_name or f"{options.function}-role"
    report.status(f"role {role_name}")
    summary["role"] = {**ensure_role(iam, role_name, policy, dry), "policy": policy}
    env = function_environment(options.bucket, options.refresh_seconds, results_prefix)
    report.status(f"function {options.function}")
    summary["function"] = ensure_function(lam, options.function, image_uri, summary["role"]["arn"], options.memory,
                                          options.timeout, env, options.architecture, dry)
    summary["function"]["environment"] = env
    if options.trigger is not None:
        arn = summary["function"].get("arn")
        summary["trigger"] = add_trigger(lam, s3, arn, options.bucket, options.trigger, aws.account, dry) if arn else \
            {"bucket": options.bucket, "prefix": options.trigger, "action": "configure"}
    if options.smoke and not dry:
        report.status(f"smoke test: invoking {options.function} with {len(options.smoke)} key(s)")
        summary["smoke"] = invoke(options.smoke, options.bucket, options.function, region=aws.region)
    return summary

