"""S3 operations rcyc performs: private buckets, model uploads with the "current model" pointer, images."""

from __future__ import annotations

import json
import mimetypes
import os
from pathlib import Path
from typing import Callable, Iterable

from rcyc_core.errors import AwsError, InputError
from rcyc_core.function import DEFAULT_POINTER_KEY, client_error_code
from rcyc_core.manifest import MANIFEST_NAME, Manifest

MODELS_PREFIX = "models/"
IMAGES_PREFIX = "images/"

# Called as progress(label, bytes_done_since_last_call, total_bytes_of_this_file) while a file uploads.
Progress = Callable[[str, int, int], None]

PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}

# What users meet, with what to do about it. Codes from S3, IAM, ECR, Lambda and STS.
HINTS = {
    "AccessDenied": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "AccessDeniedException": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "UnauthorizedOperation": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "InvalidAccessKeyId": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "InvalidClientTokenId": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "UnrecognizedClientException": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "SignatureDoesNotMatch": "The secret key does not match the access key: check AWS_PROFILE / aws configure.",
    "ExpiredToken": "The session token has expired: log in again (aws sso login, or new keys).",
    "ExpiredTokenException": "The session token has expired: log in again (aws sso login, or new keys).",
    "PermanentRedirect": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "AuthorizationHeaderMalformed": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "IllegalLocationConstraintException": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "301": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "NoSuchBucket": "Check the bucket name (--bucket / RCYC_BUCKET); upload-model and upload-image create it.",
    "BucketAlreadyExists": "Bucket names are global: pick another --bucket.",
    "RepositoryNotFoundException": "rcyc deploy creates the repository; check --repository and --region.",
    "ResourceNotFoundException": "Check the name and the region (--region); rcyc deploy creates the function.",
    "NoSuchEntity": "Check the name; rcyc deploy creates the role.",
    "TooManyRequestsException": "AWS is throttling: wait a moment and run the command again.",
    "ThrottlingException": "AWS is throttling: wait a moment and run the command again.",
}


def client(endpoint_url: str | None = None, region: str | None = None, credentials: dict | None = None, session=None):
    import boto3
    from botocore.config import Config

    kwargs = dict(credentials or {})
    return (session or boto3).client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=30),
        **kwargs,
    )


def aws_call(what: str, call: Callable, *args, **kwargs):
    """Run one boto3 call; turn its failures into one-line AwsErrors with a hint."""
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError)

    try:
        return call(*args, **kwargs)
    except (NoCredentialsError, PartialCredentialsError):
        raise AwsError(f"{what}: no AWS credentials", kind="NoCredentials",
                       hint="Configure them (aws configure, AWS_PROFILE) or use a local endpoint (AWS_ENDPOINT_URL).") from None
    except NoRegionError:
        raise AwsError(f"{what}: no AWS region", kind="NoRegion", hint="Pass --region or set AWS_REGION (or a profile region).") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        message = (error.get("Message") or "").strip()
        raise AwsError(f"{what}: {code}: {message}".rstrip(": "), kind=code, hint=HINTS.get(code, "")) from None
    except EndpointConnectionError as exc:
        raise AwsError(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}", kind="Unreachable",
                       hint="Check the network, the region (--region / AWS_REGION) and AWS_ENDPOINT_URL.") from None
    except BotoCoreError as exc:
        raise AwsError(f"{what}: {exc}", kind="S3Unreachable", hint="Check --endpoint-url / AWS_ENDPOINT_URL_S3 and the network.") from None


def tls_only_policy(bucket: str) -> dict:
    """Deny every request to the bucket and its objects that does not use TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }


def is_aws_endpoint(s3) -> bool:
    """True for AWS itself; False for an endpoint override (a local emulator such as moto, which cannot
    evaluate aws:SecureTransport and would then deny every request under a TLS-only policy)."""
    return (s3.meta.endpoint_url or "").startswith("https://") and ".amazonaws.com" in s3.meta.endpoint_url


def ensure_private_bucket(s3, bucket: str, region: str | None = None, tls_only: bool | None = None) -> bool:
    """Create ``bucket`` if missing, private and safe: all public access blocked, default encryption,
    versioning, and (on AWS, or with ``tls_only``) a policy that denies requests without TLS. An existing bucket is checked instead:
    if it is public, AwsError (rcyc never puts models or images into a public bucket).
    Returns True if it was created."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        refuse_if_public(s3, bucket)
        return False
    except ClientError as exc:
        code = client_error_code(exc)
        if code == "301":
            raise AwsError(f"bucket {bucket} is in another region", kind="WrongRegion", hint=HINTS["301"]) from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise AwsError(f"cannot use bucket {bucket}: {code}", kind="AccessDenied",
                           hint="The bucket belongs to someone else, or the credentials lack s3:ListBucket on it.") from None
    except AwsError:
        raise
    except Exception:
        aws_call(f"reach S3 for bucket {bucket}", s3.head_bucket, Bucket=bucket)
    kwargs = {}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    aws_call(f"create bucket {bucket}", s3.create_bucket, Bucket=bucket, **kwargs)
    aws_call(f"block public access on {bucket}", s3.put_public_access_block, Bucket=bucket,
             PublicAccessBlockConfiguration=dict(BLOCK_ALL))
    aws_call(f"turn on default encryption on {bucket}", s3.put_bucket_encryption, Bucket=bucket,
             ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                                                           "BucketKeyEnabled": True}]})
    aws_call(f"turn on versioning on {bucket}", s3.put_bucket_versioning, Bucket=bucket,
             VersioningConfiguration={"Status": "Enabled"})
    if tls_only if tls_only is not None else is_aws_endpoint(s3):
        aws_call(f"add the TLS-only policy to {bucket}", s3.put_bucket_policy, Bucket=bucket,
                 Policy=json.dumps(tls_only_policy(bucket)))
    return True


def public_reasons(s3, bucket: str) -> list[str]:
    """Why ``bucket`` is public (empty when it is not): an ACL grant or a policy statement open to anyone
    that its public access block does not neutralise."""
    from botocore.exceptions import ClientError

    def read(what, call, missing, **kwargs):
        try:
            return call(Bucket=bucket, **kwargs)
        except ClientError as exc:
            if client_error_code(exc) in missing:
                return None
            raise AwsError(f"cannot check whether bucket {bucket} is public ({what}): {client_error_code(exc)}", kind="AccessDenied",
                           hint="rcyc refuses to upload to a bucket it cannot check: allow s3:GetBucketPublicAccessBlock, "
                           "s3:GetBucketAcl and s3:GetBucketPolicy (docs/cloud.md).") from None

    block = (read("public access block", s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",))
             or {}).get("PublicAccessBlockConfiguration", {})
    reasons = []
    if not block.get("IgnorePublicAcls"):
        acl = read("ACL", s3.get_bucket_acl, ()) or {}
        for grant in acl.get("Grants", []):
            if grant.get("Grantee", {}).get("URI") in PUBLIC_GRANTEES:
                who = grant["Grantee"]["URI"].rsplit("/", 1)[-1]
                reasons.append(f"its ACL grants {grant.get('Permission')} to {who}")
    if not block.get("RestrictPublicBuckets"):
        policy = read("policy", s3.get_bucket_policy, ("NoSuchBucketPolicy",))
        if policy:
            try:
                statements = json.loads(policy["Policy"]).get("Statement", [])
            except ValueError:
                statements = []
            for statement in statements if isinstance(statements, list) else [statements]:
                principal = statement.get("Principal")
                anyone = principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS")))
                if statement.get("Effect") == "Allow" and anyone and not statement.get("Condition"):
                    reasons.append(f"its policy allows {statement.get('Action')} to anyone")
    return reasons


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def refuse_if_public(s3, bucket: str) -> None:
    reasons = public_reasons(s3, bucket)
    if reasons:
        raise AwsError(f"bucket {bucket} is public ({'; '.join(reasons)}); rcyc will not upload to it", kind="PublicBucket",
                       hint=f"Block public access on it (aws s3api put-public-access-block --bucket {bucket} ...), "
                       "or use another --bucket.")


def model_prefix(manifest: Manifest) -> str:
    return f"{MODELS_PREFIX}{manifest.name}/{manifest.version}/"


def pointer_body(manifest: Manifest, manifest_key: str) -> bytes:
    return json.dumps({"manifest": manifest_key, "name": manifest.name, "version": manifest.version,
                       "sha256": manifest.sha256}).encode()


def _upload_file(s3, path: Path, bucket: str, key: str, progress: Progress | None, extra: dict | None = None) -> None:
    kwargs = {"ExtraArgs": extra} if extra else {}
    if progress is not None:
        size = os.path.getsize(path)
        label = key.rsplit("/", 1)[-1]
        progress(label, 0, size)
        kwargs["Callback"] = lambda sent: progress(label, sent, size)
    aws_call(f"upload {path.name}", s3.upload_file, str(path), bucket, key, **kwargs)


def model_files(manifest: Manifest, directory: Path) -> list[tuple[Path, str]]:
    """(local file, S3 key) of every file the manifest names, each checked against its sha256."""
    prefix = model_prefix(manifest)
    return [(path, prefix + path.relative_to(directory).as_posix())
            for fmt in ("h5", "tflite") if manifest.has(fmt) for path in manifest.verify_local(directory, fmt)]


def upload_model(s3, bucket: str, manifest: Manifest, directory: Path, promote: bool = True,
                 pointer_key: str = DEFAULT_POINTER_KEY, progress: Progress | None = None) -> str:
    """Upload every file the manifest names, then the manifest, then (promote) move the pointer in one
    write. The pointer moves last, so an interrupted upload leaves it on the previous complete version."""
    for path, key in model_files(manifest, directory):
        _upload_file(s3, path, bucket, key, progress)
    manifest_key = model_prefix(manifest) + MANIFEST_NAME
    aws_call("upload the manifest", s3.put_object, Bucket=bucket, Key=manifest_key, Body=manifest.to_json().encode(),
             ContentType="application/json")
    if promote:
        move_pointer(s3, bucket, manifest, manifest_key, pointer_key)
    return manifest_key


def read_pointer(s3, bucket: str, pointer_key: str = DEFAULT_POINTER_KEY) -> dict | None:
    """The "current model" pointer, or None when there is none (or it is not a pointer)."""
    try:
        body = get_or_none(f"read s3://{bucket}/{pointer_key}", s3.get_object, ("NoSuchKey", "404"), Bucket=bucket, Key=pointer_key)
        pointer = json.loads(body["Body"].read()) if body else None
    except ValueError:
        return None
    return pointer if isinstance(pointer, dict) and isinstance(pointer.get("manifest"), str) else None


def get_or_none(what: str, call, missing: tuple[str, ...], **kwargs):
    """A read whose "not found" error codes mean None; any other failure is an AwsError."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if client_error_code(exc) in missing:
            return None
        aws_call(what, _raise, exc)
    except Exception as exc:  # no credentials, no endpoint: aws_call turns them into one-line AwsErrors
        aws_call(what, _raise, exc)


def _raise(exc: Exception):
    raise exc


def move_pointer(s3, bucket: str, manifest: Manifest, manifest_key: str, pointer_key: str = DEFAULT_POINTER_KEY) -> None:
    """One write: the function's next pointer check sees either the old model or the new one."""
    aws_call("move the current-model pointer", s3.put_object, Bucket=bucket, Key=pointer_key,
             Body=pointer_body(manifest, manifest_key), ContentType="application/json")


def image_keys(paths: Iterable[Path], prefix: str = IMAGES_PREFIX) -> list[tuple[Path, str]]:
    pairs, seen = [], {}
    for path in paths:
        key = prefix + path.name
        if key in seen and seen[key] != path.resolve():
            raise InputError(f"{seen[key]} and {path} would both be uploaded as {key}", hint="Rename one of them.")
        seen[key] = path.resolve()
        pairs.append((path, key))
    return pairs


def upload_images(s3, bucket: str, pairs: list[tuple[Path, str]], content_types: dict[Path, str] | None = None,
                  progress: Progress | None = None) -> None:
    for path, key in pairs:
        content_type = (content_types or {}).get(path) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        _upload_file(s3, path, bucket, key, progress, {"ContentType": content_type})
