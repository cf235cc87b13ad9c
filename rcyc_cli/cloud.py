"""Cloud operations: models and images in S3, the image in ECR (or any registry), the function's role in
IAM and the function in Lambda. Commands (cloud_commands.py) only parse options, call one function here
and render what it returns; progress reaches them through the ``Ui`` callbacks.

boto3 and docker are imported inside the functions that use them, so ``rcyc --help`` stays fast.
Credentials (the AWS chain's, the ECR token, a registry password) are never printed, logged or put in
an error message or in JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rcyc_core.errors import AwsError, FunctionError, InputError, ModelError
from rcyc_core.function import DEFAULT_POINTER_KEY, client_error_code, function_environment
from rcyc_core.manifest import MANIFEST_NAME, Manifest

from . import s3 as s3ops
from .options import DEFAULT_BUCKET, DEFAULT_FUNCTION
from .s3 import _raise, aws_call, get_or_none
from .local import decode_reply

DEFAULT_REPOSITORY = "rcyc-function"
DEFAULT_MEMORY = 1024
DEFAULT_TIMEOUT = 180
DEFAULT_REFRESH_SECONDS = 30
DEFAULT_RESULTS_PREFIX = "results/"
ROLE_POLICY_NAME = "rcyc-least-privilege"
LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


class RegistryError(AwsError):
    """The image registry refused (login, push) or could not be reached."""

    kind = "RegistryError"


def _quiet(*args, **kwargs) -> None:
    return None


@dataclass
class Ui:
    """How cloud operations report progress. The defaults are silent (tests, --json)."""

    status: Callable[[str], None] = _quiet
    # (label, bytes done since the last call, total bytes of that file)
    upload: Callable[[str, int, int], None] | None = None
    # (layer id, status text, current bytes or None, total bytes or None)
    layer: Callable[[str, str, int | None, int | None], None] = _quiet
    # (step, total steps, text) for image builds
    build_step: Callable[[int, int, str], None] = _quiet


# --------------------------------------------------------------------------------------------------
# AWS clients


class Aws:
    """One boto3 session: the standard credential chain and region (AWS_PROFILE, AWS_REGION, ...);
    endpoints from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> as boto3 reads them."""

    def __init__(self, region: str | None = None):
        import boto3

        region = region or os.environ.get("AWS_REGION") or None
        try:
            self.session = boto3.session.Session(region_name=region)
        except Exception as exc:  # ProfileNotFound and friends
            raise AwsError(f"cannot load the AWS configuration: {exc}", kind="BadConfig",
                           hint="Check AWS_PROFILE and ~/.aws/config.") from None
        if not self.session.region_name:
            raise AwsError("no AWS region is set", kind="NoRegion", hint="Pass --region or set AWS_REGION (or a profile region).")
        self.region = self.session.region_name
        self._clients: dict[str, object] = {}
        self._account: str | None = None

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config

            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            if service == "s3":
                self._clients[service] = s3ops.client(region=self.region, session=self.session)
            else:
                self._clients[service] = self.session.client(service, region_name=self.region, config=config)
        return self._clients[service]

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = aws_call("find the AWS account (sts get-caller-identity)", self.client("sts").get_caller_identity)["Account"]
        return self._account


def _check_segment(value: str, what: str) -> str:
    if not SAFE_SEGMENT.match(value or ""):
        raise InputError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (at most 128)", hint=f"Pick another {what}.")
    return value


# --------------------------------------------------------------------------------------------------
# Models


def upload_model(path: Path, bucket: str, name: str | None = None, version: str | None = None, promote: bool = True,
                 region: str | None = None, ui: Ui = Ui()) -> dict:
    """Validate and package PATH (a .h5/.keras file, a Portland State directory or a manifest directory),
    upload it under models/<name>/<version>/ and, with ``promote``, move the pointer to it last."""
    from .models import resolve_model

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="Give a .h5/.keras file or a directory of model files.")
    manifest, directory = resolve_model(path, ui.status)
    if name or version:
        manifest = dataclasses.replace(manifest, name=name or manifest.name, version=version or manifest.version)
    _check_segment(manifest.name, "model name")
    _check_segment(manifest.version, "model version")
    aws = Aws(region)
    s3 = aws.client("s3")
    ui.status(f"checking bucket {bucket}")
    created = s3ops.ensure_private_bucket(s3, bucket, aws.region)
    previous = s3ops.read_pointer(s3, bucket)
    files = s3ops.model_files(manifest, directory)
    ui.status(f"uploading {len(files)} model file(s) to s3://{bucket}/{s3ops.model_prefix(manifest)}")
    manifest_key = s3ops.upload_model(s3, bucket, manifest, directory, promote=promote, progress=ui.upload)
    return {
        "bucket": bucket,
        "bucket_created": created,
        "name": manifest.name,
        "version": manifest.version,
        "layout": manifest.layout,
        "sha256": manifest.sha256,
        "manifest": manifest_key,
        "files": [{"key": key, "bytes": p.stat().st_size} for p, key in files],
        "promoted": promote,
        "pointer": DEFAULT_POINTER_KEY,
        "previous": previous,
    }


def list_models(bucket: str, region: str | None = None) -> dict:
    """Every uploaded model version (models/<name>/<version>/manifest.json) and which one is current."""
    s3 = Aws(region).client("s3")
    current = s3ops.read_pointer(s3, bucket)
    paginator = s3.get_paginator("list_objects_v2")
    models = []
    pages = aws_call(f"list s3://{bucket}/{s3ops.MODELS_PREFIX}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=s3ops.MODELS_PREFIX)))
    for page in pages:
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) == 4 and parts[3] == MANIFEST_NAME:
                models.append({"name": parts[1], "version": parts[2], "manifest": obj["Key"],
                               "uploaded": obj["LastModified"].isoformat(), "current": bool(current and current["manifest"] == obj["Key"])})
    models.sort(key=lambda m: (m["name"], m["uploaded"]))
    return {"bucket": bucket, "current": current, "models": models}


def promote_model(bucket: str, name: str, version: str, region: str | None = None, ui: Ui = Ui()) -> dict:
    """Move the pointer to an uploaded version (also a rollback) after checking it is complete."""
    from botocore.exceptions import ClientError

    _check_segment(name, "model name")
    _check_segment(version, "model version")
    s3 = Aws(region).client("s3")
    s3ops.refuse_if_public(s3, bucket)
    manifest_key = f"{s3ops.MODELS_PREFIX}{name}/{version}/{MANIFEST_NAME}"
    try:
        text = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    except ClientError as exc:
        if client_error_code(exc) in ("NoSuchKey", "404"):
            raise ModelError(f"s3://{bucket}/{manifest_key} does not exist", kind="ModelUnavailable",
                             hint="rcyc models list shows the uploaded versions.") from None
        aws_call(f"read s3://{bucket}/{manifest_key}", _raise, exc)
    manifest = Manifest.from_json(text, source=f"s3://{bucket}/{manifest_key}")
    prefix = f"{s3ops.MODELS_PREFIX}{name}/{version}/"
    for fmt in ("h5", "tflite"):
        if manifest.has(fmt):
            for ref in manifest.files(fmt):
                try:
                    s3.head_object(Bucket=bucket, Key=prefix + ref.path)
                except ClientError:
                    raise ModelError(f"model {name} {version} is incomplete: s3://{bucket}/{prefix}{ref.path} is missing",
                                     kind="ModelUnavailable", hint="Upload it again with rcyc upload-model.") from None
    previous = s3ops.read_pointer(s3, bucket)
    ui.status(f"moving the pointer to {name} {version}")
    s3ops.move_pointer(s3, bucket, manifest, manifest_key)
    return {"bucket": bucket, "pointer": DEFAULT_POINTER_KEY, "previous": previous,
            "current": json.loads(s3ops.pointer_body(manifest, manifest_key))}


# --------------------------------------------------------------------------------------------------
# Images


IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff",
               "WEBP": "image/webp", "MPO": "image/jpeg"}


def check_image(path: Path) -> str:
    """The content type of an image file; InputError if it does not decode (the function's own decoder)."""
    from PIL import Image

    from rcyc_core.errors import ImageError
    from rcyc_core.preprocess import decode

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file", hint="Check the path.")
    data = path.read_bytes()
    try:
        decode(data)
    except ImageError as exc:
        raise InputError(f"{path} is not an image the function can read: {exc.message}", kind=exc.kind, hint=exc.hint) from None
    import io

    with Image.open(io.BytesIO(data)) as image:
        return IMAGE_TYPES.get(image.format or "", f"image/{(image.format or 'octet-stream').lower()}")


def upload_images(paths: list[Path], bucket: str, prefix: str = s3ops.IMAGES_PREFIX, region: str | None = None,
                  ui: Ui = Ui()) -> dict:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    types = {Path(p): check_image(p) for p in paths}  # refuse before uploading anything
    pairs = s3ops.image_keys([Path(p) for p in paths], prefix)
    aws = Aws(region)
    s3 = aws.client("s3")
    ui.status(f"checking bucket {bucket}")
    created = s3ops.ensure_private_bucket(s3, bucket, aws.region)
    s3ops.upload_images(s3, bucket, pairs, types, progress=ui.upload)
    return {"bucket": bucket, "bucket_created": created,
            "images": [{"file": str(p), "key": key, "content_type": types[p], "bytes": p.stat().st_size} for p, key in pairs]}


# --------------------------------------------------------------------------------------------------
# Invoking the function


def invoke(keys: list[str], bucket: str, function: str | None = None, endpoint_url: str | None = None,
           region: str | None = None, timeout: int = 900) -> dict:
    """Invoke the deployed function (or an emulator at ``endpoint_url``) with an S3 event for ``keys``.

    Returns {"response", "invocation": {...}, "log_tail": [...]}; FunctionError if the function failed."""
    import boto3
    from botocore.config import Config

    from rcyc_core import events

    event = events.make_event(bucket, list(keys))
    config = Config(read_timeout=timeout + 30, connect_timeout=5, retries={"total_max_attempts": 1})
    if endpoint_url:
        from .local import LOCAL_CREDENTIALS, LOCAL_REGION

        # An emulator: never send the user's own credentials to it.
        lam = boto3.client("lambda", endpoint_url=endpoint_url, region_name=LOCAL_REGION, config=config, **LOCAL_CREDENTIALS)
        function = function or "function"
    else:
        aws = Aws(region)
        lam = aws.session.client("lambda", region_name=aws.region, config=config)
        function = function or DEFAULT_FUNCTION
    started = time.perf_counter()
    reply = aws_call(f"invoke {function}", lam.invoke, FunctionName=function, InvocationType="RequestResponse",
                     LogType="Tail", Payload=json.dumps(event).encode())
    wall_ms = (time.perf_counter() - started) * 1000
    raw = reply["Payload"].read().decode("utf-8", "replace")
    log_tail = base64.b64decode(reply["LogResult"]).decode("utf-8", "replace").splitlines() if reply.get("LogResult") else []
    info = {"function": function, "endpoint": endpoint_url or "aws", "status": reply.get("StatusCode"),
            "version": reply.get("ExecutedVersion"), "wall_ms": round(wall_ms, 2)}
    try:
        response = decode_reply(raw)
        if reply.get("FunctionError"):
            raise FunctionError(f"the function failed: {reply['FunctionError']}", kind="FunctionError")
        if not isinstance(response, dict) or "results" not in response:
            raise FunctionError(f"the function answered without a result: {raw[:120]!r}", kind="BadResponse")
    except FunctionError as exc:
        exc.logs = log_tail
        exc.hint = ("The tail of the function's log is above." if log_tail else
                    "See the function's log (CloudWatch Logs, /aws/lambda/<function>).")
        raise
    return {"response": response, "invocation": info, "log_tail": log_tail}


# --------------------------------------------------------------------------------------------------
# The registry (ECR, or any Docker registry v2 for local stacks)


@dataclass
class Registry:
    host: str  # host[:port], no scheme
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    source: str = "ecr"  # ecr | basic | none  (how we log in; printed instead of the credentials)

    @property
    def loopback(self) -> bool:
        hostname = urllib.parse.urlsplit("//" + self.host).hostname or ""
        return hostname in ("localhost", "::1") or hostname.startswith("127.")

    @property
    def base_url(self) -> str:
        return f"{'http' if self.loopback else 'https'}://{self.host}"

    def auth_config(self) -> dict | None:
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def describe(self) -> dict:
        return {"host": self.host, "login": self.source}


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # the manifest digest: what a pull by digest and Lambda's ImageUri use
    config_digest: str | None  # the image id it holds (None for a manifest list)


def ecr_login(ecr) -> tuple[str, str, str]:
    """(registry host, username, password) from an ECR authorization token."""
    data = aws_call("get an ECR login token", ecr.get_authorization_token)["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = urllib.parse.urlsplit(data["proxyEndpoint"]).netloc or data["proxyEndpoint"]
    return host, username, password


def _opener(registry: Registry):
    handlers = [urllib.request.ProxyHandler({})] if registry.loopback else []
    return urllib.request.build_opener(*handlers)


def _registry_request(registry: Registry, url: str, headers: dict, method: str = "GET"):
    """One request with the registry's basic auth, following a Bearer challenge if it sends one."""
    opener = _opener(registry)
    headers = dict(headers)
    if registry.username is not None:
        pair = f"{registry.username}:{registry.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    try:
        return opener.open(urllib.request.Request(url, headers=headers, method=method), timeout=30)
    except urllib.error.HTTPError as exc:
        challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
        if not challenge.lower().startswith("bearer"):
            raise
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise
        token_headers = {k: v for k, v in headers.items() if k == "Authorization"}
        with opener.open(urllib.request.Request(realm + "?" + urllib.parse.urlencode(params), headers=token_headers), timeout=30) as reply:
            token = json.loads(reply.read()).get("token") or ""
        headers["Authorization"] = f"Bearer {token}"
        return opener.open(urllib.request.Request(url, headers=headers, method=method), timeout=30)


def remote_image(registry: Registry, repository: str, reference: str) -> RemoteImage | None:
    """What ``repository:reference`` names in the registry now, or None if it names nothing."""
    url = f"{registry.base_url}/v2/{repository}/manifests/{reference}"
    try:
        with _registry_request(registry, url, {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}) as reply:
            body = reply.read()
            digest = reply.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code in (401, 403):
            raise RegistryError(f"the registry {registry.host} refused the login ({exc.code})", kind="RegistryLoginRefused",
                                hint=_login_hint(registry)) from None
        raise RegistryError(f"the registry {registry.host} answered {exc.code} for {repository}:{reference}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"cannot reach the registry {registry.host}: {reason}", kind="RegistryUnreachable",
                            hint="Check --registry and the network.") from None
    try:
        config = json.loads(body).get("config", {}).get("digest")
    except ValueError:
        config = None
    return RemoteImage(digest, config)


def _login_hint(registry: Registry) -> str:
    if registry.source == "ecr":
        return ("The ECR token was not accepted: check ecr:GetAuthorizationToken and the push permissions (docs/cloud.md); "
                "for a local registry pass --registry-username and RCYC_REGISTRY_PASSWORD.")
    return "Check --registry-username / RCYC_REGISTRY_USERNAME and RCYC_REGISTRY_PASSWORD."


@dataclass
class PushResult:
    reference: str
    digest: str
    pushed: bool
    layers_pushed: int = 0
    layers_existing: int = 0


def push(client, image_id: str, registry: Registry, repository: str, tag: str, force_tag: bool = False,
         ui: Ui = Ui()) -> PushResult:
    """Push ``image_id`` as registry/repository:tag, unless the registry already has exactly it.

    A tag that names a different image is never moved silently: RegistryError unless ``force_tag``."""
    reference = f"{registry.host}/{repository}:{tag}"
    ui.status(f"checking {reference}")
    existing = remote_image(registry, repository, tag)
    if existing is not None:
        if existing.config_digest == image_id:
            ui.status(f"already pushed: {reference} is this image ({existing.digest[:19]}…)")
            return PushResult(reference, existing.digest, pushed=False)
        if not force_tag:
            raise RegistryError(
                f"{reference} already names a different image ({existing.digest[:19]}…); rcyc does not move a tag silently",
                kind="TagExists", hint="Deploy under a new --tag, or pass --force-tag to move this one.")
        ui.status(f"--force-tag: moving {reference} from {existing.digest[:19]}…")
    image = client.images.get(image_id)
    image.tag(f"{registry.host}/{repository}", tag, force=True)
    pushed_layers, existing_layers, digest = set(), set(), None
    try:
        stream = client.api.push(f"{registry.host}/{repository}", tag=tag, stream=True, decode=True,
                                 auth_config=registry.auth_config())
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                raise _push_error(registry, reference, (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", ""))
            if "aux" in chunk and chunk["aux"].get("Digest"):
                digest = chunk["aux"]["Digest"]
            layer, status = chunk.get("id"), chunk.get("status", "")
            if layer and status:
                detail = chunk.get("progressDetail") or {}
                if status == "Pushed":
                    pushed_layers.add(layer)
                elif status == "Layer already exists":
                    existing_layers.add(layer)
                ui.layer(layer, status, detail.get("current"), detail.get("total"))
    except RegistryError:
        raise
    except Exception as exc:  # the engine or the connection went away mid-push
        raise _push_error(registry, reference, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
    if digest is None:
        raise RegistryError(f"the push of {reference} ended without a digest", kind="PushInterrupted",
                            hint="Run the same command again: layers the registry has are not sent again.")
    check = remote_image(registry, repository, tag)
    if check is None or check.digest != digest:
        raise RegistryError(f"after the push, {reference} does not name {digest[:19]}…", kind="PushInterrupted",
                            hint="Another push moved the tag at the same time; run the command again.")
    return PushResult(reference, digest, pushed=True, layers_pushed=len(pushed_layers), layers_existing=len(existing_layers))


def _push_error(registry: Registry, reference: str, detail: str) -> RegistryError:
    text = detail.lower()
    if any(s in text for s in ("unauthorized", "authentication required", "no basic auth credentials", "denied")):
        return RegistryError(f"the registry {registry.host} refused the login for {reference}", kind="RegistryLoginRefused",
                             hint=_login_hint(registry))
    if "connection refused" in text or "no such host" in text:
        return RegistryError(f"cannot reach the registry {registry.host} ({detail})", kind="RegistryUnreachable",
                             hint="Check --registry and the network.")
    return RegistryError(f"the push of {reference} was interrupted: {detail}", kind="PushInterrupted",
                         hint="Run the same command again: layers the registry already has are not sent again.")


# --------------------------------------------------------------------------------------------------
# IAM and Lambda


def role_policy(bucket: str, results_prefix: str | None = None, trigger_prefix: str | None = None) -> dict:
    """The function's only permissions: read the model and image prefixes of one bucket, write its logs,
    and (with --trigger) write results under the results prefix."""
    read = [f"arn:aws:s3:::{bucket}/{s3ops.MODELS_PREFIX}*", f"arn:aws:s3:::{bucket}/{s3ops.IMAGES_PREFIX}*"]
    if trigger_prefix and not trigger_prefix.startswith(s3ops.IMAGES_PREFIX):
        read.append(f"arn:aws:s3:::{bucket}/{trigger_prefix}*")
    statements = [
        {"Sid": "ReadModelsAndImages", "Effect": "Allow", "Action": "s3:GetObject", "Resource": read},
        {"Sid": "WriteLogs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
    ]
    if results_prefix:
        statements.append({"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": f"arn:aws:s3:::{bucket}/{results_prefix}*"})
    return {"Version": "2012-10-17", "Statement": statements}


def _policy_document(value) -> dict:
    if isinstance(value, str):
        value = json.loads(urllib.parse.unquote(value))
    return value


def ensure_role(iam, name: str, policy: dict, dry_run: bool = False) -> dict:
    """The function's role with exactly rcyc's inline policy. Returns {"name", "arn", "action"}."""
    from botocore.exceptions import ClientError

    role = (get_or_none(f"read the role {name}", iam.get_role, ("NoSuchEntity",), RoleName=name) or {}).get("Role")
    if role is None:
        if dry_run:
            return {"name": name, "arn": None, "action": "create"}
        role = aws_call(f"create the role {name}", iam.create_role, RoleName=name,
                        AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY),
                        Description="rcyc: the classifier function's least-privilege role",
                        Tags=[{"Key": "rcyc:managed", "Value": "true"}])["Role"]
        aws_call(f"attach the policy to {name}", iam.put_role_policy, RoleName=name, PolicyName=ROLE_POLICY_NAME,
                 PolicyDocument=json.dumps(policy))
        return {"name": name, "arn": role["Arn"], "action": "created"}
    try:
        current = _policy_document(iam.get_role_policy(RoleName=name, PolicyName=ROLE_POLICY_NAME)["PolicyDocument"])
    except ClientError as exc:
        if client_error_code(exc) != "NoSuchEntity":
            aws_call(f"read the policy of {name}", _raise, exc)
        current = None
    if current == policy:
        return {"name": name, "arn": role["Arn"], "action": "unchanged"}
    if not dry_run:
        aws_call(f"update the policy of {name}", iam.put_role_policy, RoleName=name, PolicyName=ROLE_POLICY_NAME,
                 PolicyDocument=json.dumps(policy))
    return {"name": name, "arn": role["Arn"], "action": "update" if dry_run else "updated"}


def _wait(lam, waiter: str, function: str, what: str) -> dict:
    from botocore.exceptions import WaiterError

    try:
        lam.get_waiter(waiter).wait(FunctionName=function, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    except WaiterError:
        config = aws_call(f"read {function}", lam.get_function_configuration, FunctionName=function)
        reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or "no reason given"
        code = config.get("LastUpdateStatusReasonCode") or config.get("StateReasonCode") or "Failed"
        raise AwsError(f"{what} failed: {code}: {reason}", kind="FunctionUpdateFailed",
                       hint="Lambda's reason is above; fix it and run rcyc deploy again.") from None
    return aws_call(f"read {function}", lam.get_function_configuration, FunctionName=function)


def _latest_version(lam, function: str) -> str | None:
    versions = []
    paginator = lam.get_paginator("list_versions_by_function")
    for page in aws_call(f"list the versions of {function}", lambda: list(paginator.paginate(FunctionName=function))):
        versions += [int(v["Version"]) for v in page.get("Versions", []) if v["Version"].isdigit()]
    return str(max(versions)) if versions else None


def ensure_function(lam, name: str, image_uri: str | None, role_arn: str | None, memory: int, timeout: int,
                    env: dict[str, str], architecture: str, dry_run: bool = False) -> dict:
    """Create the image function, or bring its code and configuration to what is asked. Returns a
    summary with "action": created | updated | unchanged (create / update / nothing in a dry run)."""
    from botocore.exceptions import ClientError

    current = get_or_none(f"read the function {name}", lam.get_function, ("ResourceNotFoundException",), FunctionName=name)
    if current is None:
        if dry_run:
            return {"name": name, "action": "create", "changes": ["create"]}
        kwargs = dict(FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri}, Role=role_arn,
                      MemorySize=memory, Timeout=timeout, Environment={"Variables": env}, Architectures=[architecture],
                      Description="rcyc: recyclable-item classifier", Tags={"rcyc:managed": "true"})
        for attempt in range(20):
            try:
                lam.create_function(**kwargs)
                break
            except ClientError as exc:
                # A new role takes a few seconds to reach Lambda ("cannot be assumed"): wait for it.
                if client_error_code(exc) == "InvalidParameterValueException" and "assume" in str(exc) and attempt < 19:
                    time.sleep(3)
                    continue
                aws_call(f"create the function {name}", _raise, exc)
        config = _wait(lam, "function_active_v2", name, f"creating {name}")
        version = aws_call(f"publish a version of {name}", lam.publish_version, FunctionName=name)["Version"]
        return _function_summary(config, version, "created", ["create"])

    config = current["Configuration"]
    if config.get("PackageType") != "Image":
        raise AwsError(f"the function {name} is a {config.get('PackageType')} function; rcyc deploys image functions",
                       kind="WrongPackageType", hint="Pass another --function name (rcyc creates it).")
    old_env = (config.get("Environment") or {}).get("Variables", {})
    # The user's own variables stay; rcyc's are exactly this deploy's (a dropped --trigger drops its prefix).
    new_env = {**{k: v for k, v in old_env.items() if not k.startswith("RCYC_")}, **env}
    changes, update = [], {}
    if config.get("MemorySize") != memory:
        update["MemorySize"] = memory
    if config.get("Timeout") != timeout:
        update["Timeout"] = timeout
    if old_env != new_env:
        update["Environment"] = {"Variables": new_env}
    if role_arn and config.get("Role") != role_arn:
        update["Role"] = role_arn
    changes += [f"configuration: {', '.join(sorted(update))}"] if update else []
    code_changes = image_uri is not None and current.get("Code", {}).get("ImageUri") != image_uri
    if code_changes or image_uri is None:
        changes.append("code" if image_uri else "code (if the image differs)")
    if dry_run:
        return {"name": name, "arn": config["FunctionArn"], "action": "update" if changes else "nothing", "changes": changes,
                "image_uri": current.get("Code", {}).get("ImageUri")}
    if not update and not code_changes:
        return _function_summary(config, _latest_version(lam, name), "unchanged", [], current.get("Code", {}).get("ImageUri"))
    _wait(lam, "function_updated_v2", name, f"the last update of {name}")  # Lambda takes one update at a time
    if update:
        aws_call(f"update the configuration of {name}", lam.update_function_configuration, FunctionName=name, **update)
        _wait(lam, "function_updated_v2", name, f"updating the configuration of {name}")
    if code_changes:
        aws_call(f"update the code of {name}", lam.update_function_code, FunctionName=name, ImageUri=image_uri)
    config = _wait(lam, "function_updated_v2", name, f"updating {name}")
    if config.get("LastUpdateStatus") not in (None, "Successful"):
        raise AwsError(f"updating {name} failed: {config.get('LastUpdateStatusReason', 'no reason given')}", kind="FunctionUpdateFailed")
    version = aws_call(f"publish a version of {name}", lam.publish_version, FunctionName=name)["Version"]
    return _function_summary(config, version, "updated", changes, image_uri)


def _function_summary(config: dict, version: str | None, action: str, changes: list[str], image_uri: str | None = None) -> dict:
    return {"name": config["FunctionName"], "arn": config["FunctionArn"], "version": version, "action": action,
            "changes": changes, "state": config.get("State"), "last_update_status": config.get("LastUpdateStatus"),
            "memory": config.get("MemorySize"), "timeout": config.get("Timeout"), "image_uri": image_uri,
            "role": config.get("Role")}


def add_trigger(lam, s3, function_arn: str, bucket: str, prefix: str, account: str, dry_run: bool = False) -> dict:
    """S3 notifications for new objects under ``prefix`` invoke the function (permission + notification)."""
    from botocore.exceptions import ClientError

    statement_id = "rcyc-s3-trigger-" + hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:12]
    config = aws_call(f"read the notifications of {bucket}", s3.get_bucket_notification_configuration, Bucket=bucket)
    config.pop("ResponseMetadata", None)
    rule_id = f"rcyc-{prefix.strip('/').replace('/', '-') or 'all'}"
    rules = [r for r in config.get("LambdaFunctionConfigurations", []) if r.get("Id") != rule_id]
    rule = {"Id": rule_id, "LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}
    if dry_run:
        return {"bucket": bucket, "prefix": prefix, "action": "configure"}
    try:
        lam.add_permission(FunctionName=function_arn, StatementId=statement_id, Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}", SourceAccount=account)
    except ClientError as exc:
        if client_error_code(exc) != "ResourceConflictException":  # already there
            aws_call("allow S3 to invoke the function", _raise, exc)
    config["LambdaFunctionConfigurations"] = rules + [rule]
    aws_call(f"configure the notifications of {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
             NotificationConfiguration=config)
    return {"bucket": bucket, "prefix": prefix, "action": "configured", "rule": rule_id}


# --------------------------------------------------------------------------------------------------
# deploy


@dataclass
class DeployOptions:
    tag: str
    bucket: str = DEFAULT_BUCKET
    function: str = DEFAULT_FUNCTION
    repository: str = DEFAULT_REPOSITORY
    role_name: str | None = None
    region: str | None = None
    image: str | None = None  # deploy this local image instead of building one
    flavor: str = "slim"
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
        if trigger.startswith(s3ops.MODELS_PREFIX):
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
            aws_call(f"read the repository {name}", _raise, exc)
    if dry_run:
        return {"name": name, "uri": None, "action": "create", "scan_on_push": True}
    repo = aws_call(f"create the repository {name}", ecr.create_repository, repositoryName=name,
                    imageScanningConfiguration={"scanOnPush": True}, imageTagMutability="MUTABLE",
                    tags=[{"Key": "rcyc:managed", "Value": "true"}])["repository"]
    return {"name": name, "uri": repo["repositoryUri"], "action": "created", "scan_on_push": True}


def local_image(client, options: DeployOptions, ui: Ui, build: bool = True):
    """(image id, how it was obtained) of the image to deploy: --image as is, or the build (a cache hit
    when nothing changed). Without ``build``, the previous build's tag if there is one."""
    from docker.errors import ImageNotFound

    from . import docker_ops

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
    ui.status(f"building {local_tag} ({options.flavor})")
    result = docker_ops.build(client, local_tag, options.flavor, options.base_image or docker_ops.DEFAULT_BASE_IMAGE,
                              options.platform, options.ca_bundle, on_step=ui.build_step)
    how = "cache hit: nothing rebuilt" if result.cache_hit else f"built in {result.seconds:.1f} s"
    return result.image_id, f"{local_tag} ({how})"


def deploy(options: DeployOptions, ui: Ui = Ui()) -> dict:
    """Build, push (unless the registry has it), then create or update the function by digest. With
    ``dry_run``, only read: the summary is the plan."""
    from . import docker_ops

    _validate(options)
    dry = options.dry_run
    client = docker_ops.engine()  # a missing engine fails before anything is created in AWS
    aws = Aws(options.region)
    ecr, lam, iam, s3 = aws.client("ecr"), aws.client("lambda"), aws.client("iam"), aws.client("s3")
    summary: dict = {"dry_run": dry, "region": aws.region, "bucket": options.bucket, "warnings": []}

    ui.status(f"checking bucket {options.bucket}")
    try:
        aws_call(f"find bucket {options.bucket}", s3.head_bucket, Bucket=options.bucket)
    except AwsError as exc:
        if exc.kind in ("404", "NoSuchBucket", "NotFound"):
            raise AwsError(f"the bucket {options.bucket} does not exist", kind="NoSuchBucket",
                           hint="rcyc upload-model creates it (private) and puts the model in it; then deploy.") from None
        raise
    s3ops.refuse_if_public(s3, options.bucket)
    if s3ops.read_pointer(s3, options.bucket) is None:
        summary["warnings"].append(f"s3://{options.bucket}/{DEFAULT_POINTER_KEY} does not exist yet: run rcyc upload-model "
                                   "before invoking the function")

    summary["repository"] = ensure_repository(ecr, options.repository, dry)
    registry = _registry(options, ecr)
    summary["registry"] = registry.describe()

    image_id, how = local_image(client, options, ui, build=not dry)
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
        result = push(client, image_id, registry, options.repository, options.tag, options.force_tag, ui)
        image.update(action="pushed" if result.pushed else "already pushed", digest=result.digest,
                     layers_pushed=result.layers_pushed, layers_existing=result.layers_existing)
        image_uri = f"{summary['repository']['uri']}@{result.digest}"
    image["uri"] = image_uri

    results_prefix = options.results_prefix if options.trigger is not None else None
    policy = role_policy(options.bucket, results_prefix, options.trigger)
    role_name = options.role_name or f"{options.function}-role"
    ui.status(f"role {role_name}")
    summary["role"] = {**ensure_role(iam, role_name, policy, dry), "policy": policy}
    env = function_environment(options.bucket, options.refresh_seconds, results_prefix)
    ui.status(f"function {options.function}")
    summary["function"] = ensure_function(lam, options.function, image_uri, summary["role"]["arn"], options.memory,
                                          options.timeout, env, options.architecture, dry)
    summary["function"]["environment"] = env
    if options.trigger is not None:
        arn = summary["function"].get("arn")
        summary["trigger"] = add_trigger(lam, s3, arn, options.bucket, options.trigger, aws.account, dry) if arn else \
            {"bucket": options.bucket, "prefix": options.trigger, "action": "configure"}
    if options.smoke and not dry:
        ui.status(f"smoke test: invoking {options.function} with {len(options.smoke)} key(s)")
        summary["smoke"] = invoke(options.smoke, options.bucket, options.function, region=aws.region)
    return summary
