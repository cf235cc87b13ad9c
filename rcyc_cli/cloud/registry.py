"""The image registry: ECR, or any Docker registry v2 (a local one for local stacks). Reads manifests
over the registry API and pushes through the engine; never moves a tag silently."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from rcyc_core.errors import AwsError

from ..files import shown, unanswered
from ..reporting import SILENT, Reporter
from .aws import aws_call


# What Lambda takes as ImageUri: a single-platform image manifest (Docker v2 schema 2 or OCI), never an index.
LAMBDA_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
MANIFEST_MEDIA_TYPES = LAMBDA_MEDIA_TYPES + INDEX_MEDIA_TYPES


class RegistryError(AwsError):
    """The image registry refused (login, push) or could not be reached."""

    kind = "RegistryError"


@dataclass
class Registry:
    host: str  # host[:port], no scheme
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    source: str = "ecr"  # ecr | basic | none  (how we log in; printed instead of the credentials)
    note: str = ""  # why this login (printed in the plan)

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
        return {"host": self.host, "login": self.source, **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # the manifest digest: what a pull by digest and Lambda's ImageUri use
    config_digest: str | None  # the image id it holds (None for a manifest list)
    media_type: str | None = None

    @property
    def lambda_ready(self) -> bool:
        """Lambda takes a single-platform Docker v2 schema 2 or OCI image manifest, not an index."""
        return self.media_type in LAMBDA_MEDIA_TYPES and self.config_digest is not None


def require_lambda_manifest(remote: RemoteImage, reference: str) -> None:
    if not remote.lambda_ready:
        raise RegistryError(f"{reference} ({remote.digest}) is a {remote.media_type or 'manifest of unknown type'}; Lambda needs "
                            "a single-platform image manifest (Docker v2 schema 2 or OCI)", kind="UnsupportedManifest",
                            hint="Push a single-platform image (rcyc deploy builds one; with --image, pick one platform).")


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
        token = _bearer_token(registry, opener, realm, params, {k: v for k, v in headers.items() if k == "Authorization"})
        headers["Authorization"] = f"Bearer {token}"
        return opener.open(urllib.request.Request(url, headers=headers, method=method), timeout=30)


def _bearer_token(registry: Registry, opener, realm: str, params: dict, headers: dict) -> str:
    """The token the registry's login realm gives. The realm and the token are the registry's word: a realm
    that is not a web address (``file:`` would read this machine's files) or a token that cannot be a header
    (a line break) is a refused login, not a ValueError traceback."""
    refused = RegistryError(f"the registry {registry.host} sent its login to {shown(realm)[:200]}, which answered no token",
                            kind="RegistryLoginRefused", hint=_login_hint(registry))
    try:
        if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise refused
        with opener.open(urllib.request.Request(realm + "?" + urllib.parse.urlencode(params), headers=headers), timeout=30) as reply:
            token = json.loads(reply.read(1 << 20)).get("token") or ""
    except (ValueError, AttributeError, RecursionError, http.client.HTTPException):  # a web page, not a token document
        raise refused from None
    if not isinstance(token, str) or not token.isprintable():
        raise refused
    return token


def remote_image(registry: Registry, repository: str, reference: str) -> RemoteImage | None:
    """What ``repository:reference`` names in the registry now, or None if it names nothing."""
    url = f"{registry.base_url}/v2/{repository}/manifests/{reference}"
    try:
        with _registry_request(registry, url, {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}) as reply:
            body = reply.read()
            digest = reply.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
            content_type = (reply.headers.get("Content-Type") or "").split(";")[0].strip()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code in (401, 403):
            raise RegistryError(f"the registry {registry.host} refused the login ({exc.code})", kind="RegistryLoginRefused",
                                hint=_login_hint(registry)) from None
        raise RegistryError(f"the registry {registry.host} answered {exc.code} for {repository}:{reference}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # also an answer cut short
        raise RegistryError(f"cannot reach the registry {registry.host}: {unanswered(exc)}", kind="RegistryUnreachable",
                            hint="Check --registry and the network.") from None
    try:
        document = json.loads(body)
        config = (document.get("config") or {}).get("digest")
        media_type = document.get("mediaType") or content_type or None
    except (ValueError, AttributeError):
        config, media_type = None, content_type or None
    return RemoteImage(digest, config, media_type)


def _login_hint(registry: Registry) -> str:
    if registry.source == "none":
        return ("rcyc sends ECR's token only to ECR: for another registry pass --registry-username (and the password in "
                "RCYC_REGISTRY_PASSWORD).")
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
         report: Reporter = SILENT) -> PushResult:
    """Push ``image_id`` as registry/repository:tag, unless the registry already has exactly it.

    A tag that names a different image is never moved silently: RegistryError unless ``force_tag``."""
    reference = f"{registry.host}/{repository}:{tag}"
    report.status(f"checking {reference}")
    existing = remote_image(registry, repository, tag)
    if existing is not None:
        if existing.config_digest == image_id:
            require_lambda_manifest(existing, reference)
            report.status(f"already pushed: {reference} is this image ({existing.digest})")
            return PushResult(reference, existing.digest, pushed=False)
        if not force_tag:
            raise RegistryError(
                f"{reference} already names a different image ({existing.digest}); rcyc does not move a tag silently",
                kind="TagExists", hint="Deploy under a new --tag, or pass --force-tag to move this one.")
        report.status(f"--force-tag: moving {reference} from {existing.digest}")
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
                report.layer(layer, status, detail.get("current"), detail.get("total"))
    except RegistryError:
        raise
    except Exception as exc:  # the engine or the connection went away mid-push
        raise _push_error(registry, reference, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
    if digest is None:
        raise RegistryError(f"the push of {reference} ended without a digest", kind="PushInterrupted",
                            hint="Run the same command again: layers the registry has are not sent again.")
    check = remote_image(registry, repository, tag)
    if check is None or check.digest != digest:
        raise RegistryError(f"after the push, {reference} does not name {digest}", kind="PushInterrupted",
                            hint="Another push moved the tag at the same time; run the command again.")
    require_lambda_manifest(check, reference)
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

