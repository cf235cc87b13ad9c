"""S3 operations rcyc performs: private buckets, model uploads with the "current model" pointer, images."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Callable, Iterable

from rcyc_core.errors import AwsError, InputError
from rcyc_core.function import DEFAULT_POINTER_KEY
from rcyc_core.manifest import MANIFEST_NAME, Manifest

MODELS_PREFIX = "models/"
IMAGES_PREFIX = "images/"


def client(endpoint_url: str | None = None, region: str | None = None, credentials: dict | None = None):
    import boto3
    from botocore.config import Config

    kwargs = dict(credentials or {})
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=30),
        **kwargs,
    )


def aws_call(what: str, call: Callable, *args, **kwargs):
    """Run one boto3 call; turn its failures into one-line AwsErrors."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call(*args, **kwargs)
    except NoCredentialsError:
        raise AwsError(f"{what}: no AWS credentials", hint="Configure them (aws configure, AWS_PROFILE) or use a local endpoint.") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"{what}: {error.get('Code')}: {error.get('Message', '')}".rstrip(": "), kind=str(error.get("Code"))) from None
    except BotoCoreError as exc:
        raise AwsError(f"{what}: {exc}", kind="S3Unreachable", hint="Check --endpoint-url / AWS_ENDPOINT_URL_S3 and the network.") from None


def ensure_private_bucket(s3, bucket: str, region: str | None = None) -> bool:
    """Create ``bucket`` if missing, with all public access blocked. Returns True if it was created."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise AwsError(f"cannot use bucket {bucket}: {exc.response['Error'].get('Code')}", kind="AccessDenied") from None
    except Exception:
        aws_call(f"reach S3 for bucket {bucket}", s3.head_bucket, Bucket=bucket)
    kwargs = {}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    aws_call(f"create bucket {bucket}", s3.create_bucket, Bucket=bucket, **kwargs)
    aws_call(
        f"block public access on {bucket}",
        s3.put_public_access_block,
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    return True


def model_prefix(manifest: Manifest) -> str:
    return f"{MODELS_PREFIX}{manifest.name}/{manifest.version}/"


def upload_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
                 pointer_key: str = DEFAULT_POINTER_KEY) -> str:
    """Upload every file the manifest names, then the manifest, then (promote) move the pointer in one
    write. The pointer moves last, so an interrupted upload leaves it on the previous complete version."""
    prefix = model_prefix(manifest)
    for fmt in ("h5", "tflite"):
        if manifest.has(fmt):
            for path in manifest.verify_local(directory, fmt):
                aws_call(f"upload {path.name}", s3.upload_file, str(path), bucket, prefix + path.relative_to(directory).as_posix())
    manifest_key = prefix + MANIFEST_NAME
    aws_call("upload the manifest", s3.put_object, Bucket=bucket, Key=manifest_key, Body=manifest.to_json().encode(),
             ContentType="application/json")
    if promote:
        pointer = {"manifest": manifest_key, "name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
        aws_call("move the current-model pointer", s3.put_object, Bucket=bucket, Key=pointer_key,
                 Body=json.dumps(pointer).encode(), ContentType="application/json")
    return manifest_key


def image_keys(paths: Iterable[Path], prefix: str = IMAGES_PREFIX) -> list[tuple[Path, str]]:
    pairs, seen = [], {}
    for path in paths:
        key = prefix + path.name
        if key in seen and seen[key] != path.resolve():
            raise InputError(f"{seen[key]} and {path} would both be uploaded as {key}", hint="Rename one of them.")
        seen[key] = path.resolve()
        pairs.append((path, key))
    return pairs


def upload_images(s3, bucket: str, pairs: list[tuple[Path, str]]) -> None:
    for path, key in pairs:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        aws_call(f"upload {path}", s3.upload_file, str(path), bucket, key, ExtraArgs={"ContentType": content_type})
