"""``rcyc deploy``: build, push (unless the registry has the image), then create or update the function
by digest, with its role and (optionally) its S3 trigger. With ``dry_run``, only reads: the summary is the plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rcyc_core.config import function_environment
from rcyc_core.errors import AwsError, FunctionError, InputError
from rcyc_core.s3 import NOT_FOUND_CODES

from ..defaults import (ARCHITECTURES, DEFAULT_BASE_IMAGE, DEFAULT_BUCKET, DEFAULT_FUNCTION, DEFAULT_REFRESH_SECONDS,
                        DEFAULT_REPOSITORY, DEFAULT_RESULTS_PREFIX, DEFAULT_SQS_BATCH_SIZE, MODELS_PREFIX, POINTER_KEY)
from ..function_spec import FunctionSpec
from ..reporting import SILENT, Reporter, plural
from . import buckets, roles, store
from .aws import Aws, aws_call, get_or_none
from . import triggers
from .functions import check_trigger_free, ensure_function, ensure_role, remove_trigger, role_policy
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
    spec: FunctionSpec = field(default_factory=FunctionSpec)  # the image and limits of the function
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS
    registry: str | None = None
    registry_username: str | None = field(default=None, repr=False)
    registry_password: str | None = field(default=None, repr=False)
    force_tag: bool = False
    trigger: str | None = None
    via: str | None = None  # how uploads reach the function (triggers.VIAS; default s3, or the existing trigger's)
    batch_size: int = DEFAULT_SQS_BATCH_SIZE  # --via sqs: messages per invocation
    no_trigger: bool = False  # remove the function's S3 trigger whole (without either, an existing one is kept)
    results_prefix: str = DEFAULT_RESULTS_PREFIX
    dry_run: bool = False
    smoke: list[str] = field(default_factory=list)
    adopt_role: bool = False  # narrow an existing role that grants more than rcyc's policy (else: refused)

    # The function's settings, read from its one spec.
    flavor = property(lambda self: self.spec.flavor)
    base_image = property(lambda self: self.spec.base_image)
    ca_bundle = property(lambda self: self.spec.ca_bundle)
    memory = property(lambda self: self.spec.memory)
    timeout = property(lambda self: self.spec.timeout)
    architecture = property(lambda self: self.spec.architecture)  # None: take the image's

    @property
    def platform(self) -> str | None:
        """--platform as docker names it (the build's target)."""
        return next((name for name, arch in ARCHITECTURES.items() if arch == self.architecture), None)


LAMBDA_ARCHITECTURES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?$")



def _validate(options: DeployOptions) -> None:
    buckets.validate_bucket_name(options.bucket)
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", options.tag):
        raise InputError(f"--tag {options.tag!r} is not a valid image tag", hint="Use letters, digits, '_', '.', '-' (at most 128).")
    if not re.match(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$", options.repository):
        raise InputError(f"--repository {options.repository!r} is not a valid repository name", hint="Use lower-case letters, digits and . _ - /.")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", options.function):
        raise InputError(f"--function {options.function!r} is not a valid function name", hint="Use letters, digits, '-' and '_' (at most 64).")
    if options.trigger is not None and options.no_trigger:
        raise InputError("--trigger and --no-trigger contradict each other", hint="Pass one of them.")
    if options.via is not None and options.trigger is None:
        raise InputError(f"--via {options.via} needs --trigger PREFIX", hint="e.g. --trigger incoming/ --via sqs")
    if options.trigger is not None:
        trigger, results = options.trigger, options.results_prefix
        if not results or results.startswith(trigger) or trigger.startswith(results):
            raise InputError(f"the results prefix {results!r} and the trigger prefix {trigger!r} overlap: results would trigger the function",
                             hint="Pick a --results-prefix outside the --trigger prefix.")
        if trigger.startswith(MODELS_PREFIX):
            raise InputError("--trigger must not be under models/", hint="Use an image prefix such as incoming/.")



def _registry(options: DeployOptions, ecr) -> Registry:
    """Where to push and how to log in. ECR's token goes to ECR only: a --registry that is not an ECR
    registry gets basic auth (--registry-username) or nothing."""
    username = options.registry_username
    password = options.registry_password
    override = re.sub(r"^[a-z]+://", "", options.registry).rstrip("/") if options.registry else None
    if override and username is not None:
        return Registry(override, username, password or "", source="basic")
    if override and not ECR_HOST.match(override.lower()):
        return Registry(override, source="none", note="not ECR: no login sent (ECR's token goes to ECR only)")
    host, token_user, token_password = ecr_login(ecr)
    if override and override.lower().split(":")[0] != host.lower().split(":")[0]:
        return Registry(override, source="none", note=f"not this account's ECR ({host}): no login sent")
    if not override and not buckets.is_aws_endpoint(ecr):
        # A local ECR API (moto) answers with a registry host that exists nowhere: say so before any build.
        raise InputError(f"the ECR API at {ecr.meta.endpoint_url} is a local endpoint; the registry it names ({host}) "
                         "does not exist, so the image has nowhere to go",
                         hint="Pass --registry HOST:PORT (a local registry, as in docs/cloud.md), or deploy to AWS.")
    return Registry(host, token_user, token_password, source="ecr")



def ensure_repository(ecr, name: str, dry_run: bool = False) -> dict:
    found = get_or_none(f"read the repository {name}", ecr.describe_repositories, ("RepositoryNotFoundException",),
                        repositoryNames=[name])
    if found:
        repo = found["repositories"][0]
        return {"name": name, "uri": repo["repositoryUri"], "action": "exists",
                "scan_on_push": repo.get("imageScanningConfiguration", {}).get("scanOnPush")}
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
    if client is None:
        return None, "unknown: no Docker engine to build or inspect it (a dry run reads the rest)"
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



def image_architecture(client, image_id: str | None) -> str | None:
    """Lambda's name for the architecture of a local image (None when unknown)."""
    if client is None or image_id is None:
        return None
    arch = (client.images.get(image_id).attrs or {}).get("Architecture")
    return LAMBDA_ARCHITECTURES.get(str(arch).lower()) if arch else None



def deploy(options: DeployOptions, report: Reporter = SILENT) -> dict:
    """Build, push (unless the registry has it), then create or update the function by digest. With
    ``dry_run``, only read: the summary is the plan (a Docker engine is not needed for it).

    The deploy converges: what it leaves is what the command says, read back from AWS. The trigger is kept
    whole when neither --trigger nor --no-trigger is given, set to --trigger's prefix, or removed whole with
    --no-trigger; the architecture is --platform's (or the image's) and must match the image's.
    A failed --smoke raises its error with the summary attached (``exc.summary``): the function was updated."""
    from rcyc_core.errors import PrerequisiteError

    from .. import image as images

    _validate(options)
    dry = options.dry_run
    try:
        client = images.engine()  # a missing engine fails before anything is created in AWS
    except PrerequisiteError:
        if not dry:
            raise
        client = None
    aws = Aws(options.region)
    ecr, lam, iam, s3 = aws.client("ecr"), aws.client("lambda"), aws.client("iam"), aws.client("s3")
    summary: dict = {"dry_run": dry, "region": aws.region, "bucket": options.bucket, "warnings": []}
    if client is None:
        summary["warnings"].append("no Docker engine answers: the plan cannot tell whether the image differs from the pushed one")

    report.status(f"checking bucket {options.bucket}")
    _check_bucket(s3, options.bucket, summary)

    read = _read_and_refuse(options, aws, lam, iam, s3, summary)
    role_name, policy, results_prefix = read.role_name, read.policy, read.results_prefix

    summary["repository"] = ensure_repository(ecr, options.repository, dry)
    registry = _registry(options, ecr)
    summary["registry"] = registry.describe()

    image_id, how = local_image(client, options, report, build=not dry)
    architecture = _architecture(options, image_architecture(client, image_id), image_id)
    image = {"local": how, "image_id": image_id, "tag": options.tag, "architecture": architecture,
             "reference": f"{registry.host}/{options.repository}:{options.tag}"}
    summary["image"] = image
    image_uri = None
    if dry:
        image_uri = _plan_push(image, registry, options, image_id, summary["repository"]["uri"])
    else:
        result = push(client, image_id, registry, options.repository, options.tag, options.force_tag, report)
        image.update(action="pushed" if result.pushed else "already pushed", digest=result.digest,
                     layers_pushed=result.layers_pushed, layers_existing=result.layers_existing)
        image_uri = f"{summary['repository']['uri']}@{result.digest}"
    image["uri"] = image_uri

    report.status(f"role {role_name}")
    summary["role"] = {**ensure_role(iam, role_name, policy, dry), "policy": policy}
    if read.extras:  # --adopt-role: narrowed to rcyc's policy and Lambda's trust
        summary["role"]["narrowed"], summary["role"]["left"] = roles.narrow(iam, role_name, read.extras, dry)
        summary["warnings"] += [f"role {role_name}: {item}" for item in summary["role"]["narrowed"] + summary["role"]["left"]]
    env = function_environment(options.bucket, options.refresh_seconds, results_prefix)
    report.status(f"function {options.function}")
    summary["function"] = ensure_function(lam, options.function, image_uri, summary["role"]["arn"], options.memory,
                                          options.timeout, env, architecture, dry)
    summary["function"]["environment"] = env
    summary["trigger"] = _converge_trigger(options, lam, s3, aws, summary, read)
    if summary["trigger"] is None:
        del summary["trigger"]
    if options.smoke and not dry:
        _smoke(options, aws, summary, report)
    _refuse_if_the_plan_refuses(summary)
    return summary


def _check_bucket(s3, bucket: str, summary: dict) -> None:
    """The bucket exists and is not public; a warning when its pointer is missing or names a manifest that is gone."""
    try:
        aws_call(f"find bucket {bucket}", s3.head_bucket, Bucket=bucket)
    except AwsError as exc:
        if exc.kind in NOT_FOUND_CODES:
            raise AwsError(f"the bucket {bucket} does not exist", kind="NoSuchBucket",
                           hint="rcyc upload-model creates it (private) and puts the model in it; then deploy.") from None
        raise
    buckets.refuse_if_public(s3, bucket)
    pointer = store.read_pointer(s3, bucket)
    if pointer is None:
        summary["warnings"].append(f"s3://{bucket}/{POINTER_KEY} does not exist yet: run rcyc upload-model "
                                   "before invoking the function")
    elif get_or_none(f"check s3://{bucket}/{pointer['manifest']}", s3.head_object, NOT_FOUND_CODES,
                     Bucket=bucket, Key=pointer["manifest"]) is None:
        from .models import pointer_problem

        summary["warnings"].append(pointer_problem(bucket, pointer))


@dataclass
class _Read:
    """What a deploy read before writing anything."""

    existing_config: dict | None
    trigger_plan: str | None  # "set" | "keep" | "remove" | None
    trigger_prefix: str | None
    results_prefix: str | None
    role_name: str
    policy: dict
    extras: list[dict]  # what an existing role grants beyond ``policy``
    via: str | None = None  # how uploads reach the function (triggers.VIAS)


def _read_and_refuse(options: DeployOptions, aws, lam, iam, s3, summary: dict) -> _Read:
    """Everything that can refuse is read before anything is written: a Zip function, a prefix another
    target's notification owns, a role granting more than rcyc's policy (unless --adopt-role)."""
    existing_config = get_or_none(f"read the function {options.function}", lam.get_function_configuration,
                                  ("ResourceNotFoundException",), FunctionName=options.function)
    if existing_config and existing_config.get("PackageType", "Image") != "Image":
        raise AwsError(f"the function {options.function} is a {existing_config.get('PackageType')} function; rcyc deploys "
                       "image functions", kind="WrongPackageType", hint="Pass another --function name (rcyc creates it).")
    if options.trigger is not None:
        check_trigger_free(s3, options.bucket, options.trigger, options.function)
    existing_trigger = triggers.current(aws, options.bucket, options.function) if existing_config else None
    trigger_prefix, results_prefix, trigger_plan = _trigger_plan(options, existing_config, existing_trigger)
    via = (options.via or "s3") if trigger_plan == "set" else existing_trigger["via"] if trigger_plan == "keep" else None
    if trigger_plan == "keep":
        summary["warnings"].append(f"kept the trigger on s3://{options.bucket}/{trigger_prefix} (via {via}, results under "
                                   f"{results_prefix}); pass --no-trigger to remove it")
    policy = role_policy(options.bucket, results_prefix, trigger_prefix)
    policy["Statement"] += triggers.role_statements(via, aws, options.function)
    role_name = options.role_name or f"{options.function}-role"
    extras = roles.extra_grants(iam, role_name, policy)
    if extras and not options.adopt_role:
        raise roles.refusal(role_name, extras)
    return _Read(existing_config, trigger_plan, trigger_prefix, results_prefix, role_name, policy, extras, via)


def _converge_trigger(options: DeployOptions, lam, s3, aws, summary: dict, read: _Read) -> dict | None:
    """All four parts of the trigger or none: set, kept, removed (also a stale invoke permission left
    when the notification is gone)."""
    dry, trigger_plan, trigger_prefix = options.dry_run, read.trigger_plan, read.trigger_prefix
    if trigger_plan in ("set", "keep"):
        arn = summary["function"].get("arn")
        trigger = triggers.converge(read.via, aws, arn, options.bucket, trigger_prefix, options.batch_size, dry) if arn \
            else {"bucket": options.bucket, "prefix": trigger_prefix, "action": "configure", "via": read.via}
        if trigger_plan == "keep":
            trigger["action"] = "keep" if dry else "kept"
        return trigger
    none = {"bucket": options.bucket, "prefix": None, "action": "none to remove"}
    if not read.existing_config:
        return none if trigger_plan == "remove" else None
    if trigger_plan == "remove":  # every way rcyc wired uploads to the function
        return triggers.remove(aws, options.function, options.bucket, dry) or none
    # No trigger kept: an S3 invoke permission left behind (its notification gone) is removed too.
    removed = remove_trigger(lam, s3, options.function, options.bucket, dry)
    if removed:
        summary["warnings"].append("removed the S3 invoke permission of a trigger whose notification is gone")
    return removed


def _smoke(options: DeployOptions, aws, summary: dict, report: Reporter) -> None:
    """Invoke once with the smoke keys; a failure, or a key in the response's errors, raises with the summary."""
    from rcyc_core.errors import RcycError
    from rcyc_core.results import RecordError

    report.status(f"smoke test: invoking {options.function} with {plural(len(options.smoke), 'key')}")
    try:
        summary["smoke"] = invoke(options.smoke, options.bucket, options.function, region=aws.region)
        errors = summary["smoke"]["response"].get("errors") or []
        if errors:  # a record the function could not classify is a failed smoke test, not a pass
            first = RecordError.from_json(errors[0])
            raise FunctionError(f"the smoke test failed: {first.key}: {first.error}: {first.message}", kind="SmokeTestFailed",
                                hint="The deployed function answered with an error for the smoke key: check the key and the model.")
    except RcycError as exc:  # FunctionError (exit 6), or AWS refusing the invoke
        summary["smoke"] = {"error": {"kind": exc.kind, "message": exc.message}, "log_tail": getattr(exc, "logs", [])}
        exc.summary = summary
        raise


def _refuse_if_the_plan_refuses(summary: dict) -> None:
    """A plan that refuses fails like the deploy it plans would (with the plan attached)."""
    refused = [f"{part}: {summary[part]['action']}" for part in ("image", "function", "trigger")
               if str((summary.get(part) or {}).get("action", "")).startswith("refuse")]
    if refused:
        error = InputError("the deploy would be refused: " + "; ".join(refused), kind="PlanRefused",
                           hint="Fix what the plan refuses (or pass --force-tag to move the tag), then deploy.")
        error.summary = summary
        raise error


def _trigger_plan(options: DeployOptions, existing_config: dict | None, existing_trigger: dict | None):
    """(trigger prefix, results prefix, plan): the trigger asked for ("set"), asked away ("remove"), or, with
    neither, the existing one kept whole ("keep"; None: there is none)."""
    if options.trigger is not None:
        return options.trigger, options.results_prefix, "set"
    if not options.no_trigger and existing_trigger is not None:
        old_env = (existing_config.get("Environment") or {}).get("Variables", {})
        return existing_trigger["prefix"], old_env.get("RCYC_RESULTS_PREFIX") or options.results_prefix, "keep"
    return None, None, "remove" if options.no_trigger else None


def _plan_push(image: dict, registry: Registry, options: DeployOptions, image_id: str | None, repository_uri: str | None) -> str | None:
    """A dry run's plan for the image (``image["action"]``); the image URI when the registry already has it."""
    remote = remote_image(registry, options.repository, options.tag)
    if remote is None:
        image["action"] = "push"
    elif not remote.lambda_ready:
        image.update(action=f"refuse: the tag names a {remote.media_type or 'manifest of unknown type'}, not a single-platform image",
                     digest=remote.digest)
    elif image_id and remote.config_digest == image_id:
        image.update(action="nothing (already pushed)", digest=remote.digest)
    elif image_id is None:
        image.update(action="unknown (no engine to compare with the pushed image)", digest=remote.digest)
    else:
        image.update(action="refuse: the tag names another image" if not options.force_tag else "push (--force-tag moves the tag)",
                     digest=remote.digest)
    if remote is not None and repository_uri and image["action"].startswith("nothing"):
        return f"{repository_uri}@{remote.digest}"
    return None


def _architecture(options: DeployOptions, image_arch: str | None, image_id: str | None) -> str:
    """--platform's architecture, checked against the image's; without --platform, the image's."""
    wanted = options.architecture
    if wanted and image_arch and wanted != image_arch:
        raise InputError(f"the image {options.image or image_id} is {image_arch}, but --platform {options.platform} asks for {wanted}",
                         kind="ArchitectureMismatch",
                         hint="Build for that platform (rcyc deploy --platform ... without --image) or drop --platform.")
    return wanted or image_arch or "x86_64"
