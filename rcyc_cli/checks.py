"""``rcyc doctor``: each prerequisite as ok / missing, with the fix. Looks, never changes anything."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from rcyc_core.errors import RcycError

from .local.emulator import rie


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked (it depends on something missing)
    detail: str
    fix: str = ""

    @property
    def status(self) -> str:
        return {True: "ok", False: "missing", None: "skipped"}[self.ok]

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def check_emulator(explicit: str | None) -> Check:
    try:
        return Check("Lambda emulator", True, str(rie.locate(explicit)))
    except RcycError as exc:
        return Check("Lambda emulator", False, exc.message, exc.hint)


def check_docker() -> Check:
    try:
        import docker

        client = docker.from_env(timeout=3)
        version = client.version().get("Version", "?")
        client.close()
        return Check("Docker engine", True, f"engine {version}")
    except Exception as exc:  # the SDK raises many types for "no engine"
        return Check("Docker engine", False, f"no engine answers ({type(exc).__name__})",
                     "sudo systemctl start docker (or start Docker Desktop; or export DOCKER_HOST=unix:///PATH/docker.sock). "
                     "Only build, deploy and --runtime docker need it.")


def check_base_image() -> Check:
    """The base image build and deploy use (RCYC_BASE_IMAGE, else AWS's): in the engine, or pullable by it.
    Whether it can be pulled is asked of the engine (it asks the registry for the manifest; nothing is pulled)."""
    from .defaults import DEFAULT_BASE_IMAGE

    name = os.environ.get("RCYC_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    fix = ("Pass a base the engine has: rcyc build --base-image IMG (or export RCYC_BASE_IMAGE=IMG); "
           "a Debian one can be made offline as in .ci/docker-up.sh.")
    try:
        import docker

        client = docker.from_env(timeout=8)
    except Exception:
        return Check("base image", None, f"{name}: not checked without an engine")
    try:
        try:
            client.images.get(name)
            return Check("base image", True, f"{name} (in the engine)")
        except Exception:
            pass
        try:
            client.api.inspect_distribution(name)
            return Check("base image", True, f"{name} (not pulled yet; the engine can pull it)")
        except Exception as exc:
            reason = getattr(exc, "explanation", None) or type(exc).__name__
            return Check("base image", False, f"{name} cannot be pulled here: {str(reason)[:160]}", fix)
    finally:
        client.close()


def check_aws() -> list[Check]:
    import boto3

    session = boto3.Session()
    checks = []
    credentials = session.get_credentials()
    if credentials is None:
        checks.append(Check("AWS credentials", False, "none found (only the cloud commands need them)",
                            "aws configure (or export AWS_PROFILE=NAME; or, for a local moto, export "
                            "AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)"))
    else:
        # Where they came from, never what they are.
        checks.append(Check("AWS credentials", True, f"from {credentials.method}"))
    region = session.region_name
    checks.append(Check("AWS region", bool(region), region or "not set", "" if region else "export AWS_REGION=us-east-1 (or aws configure set region REGION)"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if credentials is None:
        checks.append(Check("S3 reachable", None, "not checked without credentials"))
        return checks
    try:
        from botocore.config import Config

        s3 = session.client("s3", config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        s3.list_buckets()
        checks.append(Check("S3 reachable", True, endpoint or "AWS"))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        checks.append(Check("S3 reachable", False, f"{endpoint or 'AWS'}: {code or type(exc).__name__}",
                            "aws s3 ls (shows the full error: network, region, AWS_ENDPOINT_URL_S3 or permissions)"))
    return checks


def check_package(name: str, module: str, purpose: str, install: str) -> Check:
    found = importlib.util.find_spec(module) is not None  # find, do not import (TensorFlow takes seconds)
    return Check(name, found, "installed" if found else f"not installed ({purpose})", "" if found else install)


def check_training() -> Check:
    """The train extra: skipped when it is not installed (it is optional); else the backbone against its
    golden logits (about 3 s: it loads TensorFlow)."""
    from . import train

    ready, missing = train.installed()
    if not ready:
        return Check("training backbone", None, f"not installed: {missing}")
    try:
        result = train.self_check()
    except RcycError as exc:
        return Check("training backbone", False, exc.message, exc.hint)
    return Check("training backbone", result["ok"], f"max |delta| {result['max_abs_delta']:.1e} against the golden logits",
                 "" if result["ok"] else "make clean setup-dev (reinstalls the train extra from the lock)")


def run(explicit_rie: str | None = None) -> list[Check]:
    return [
        check_emulator(explicit_rie),
        check_docker(),
        *check_aws(),
        check_base_image(),
        check_package("LiteRT", "ai_edge_litert", "the slim backend", "make setup (or: pip install ai-edge-litert)"),
        check_package("TensorFlow", "tensorflow", "the keras backend and model conversion",
                      "make setup-dev (or: pip install 'rcyc[keras]')"),
        check_training(),
    ]
