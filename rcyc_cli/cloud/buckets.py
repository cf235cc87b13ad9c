"""Buckets rcyc uses: created private and safe, and never written to when public."""

from __future__ import annotations

import ipaddress
import json
import re

from rcyc_core.errors import AwsError, InputError
from rcyc_core.s3 import NOT_FOUND_CODES, client_error_code

from . import public
from .aws import HINTS, aws_call, translate


BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
BUCKET_RULES = ("S3 bucket names are 3-63 characters of lower-case letters, digits, '.' and '-', start and end with a "
                "letter or digit, have no '..', are not IP addresses and do not use AWS's reserved prefixes/suffixes.")


def validate_bucket_name(bucket: str) -> str:
    """InputError (exit 3) unless ``bucket`` follows S3's naming rules for general purpose buckets."""
    problem = None
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        problem = "is not 3-63 lower-case letters, digits, '.' or '-' starting and ending with a letter or digit"
    elif ".." in bucket:
        problem = "has two adjacent periods"
    elif bucket.startswith(RESERVED_PREFIXES) or bucket.endswith(RESERVED_SUFFIXES):
        problem = "uses a prefix or suffix AWS reserves"
    else:
        try:
            ipaddress.IPv4Address(bucket)
            problem = "looks like an IP address"
        except ValueError:
            pass
    if problem:
        raise InputError(f"bucket name {bucket!r} {problem}", kind="InvalidBucketName",
                         hint=BUCKET_RULES + " Pass another --bucket (or RCYC_BUCKET).")
    return bucket


def parse_s3_uri(uri: str, hint: str = "Give s3://BUCKET/PREFIX/ (the <label>/<photo> folders under it).") -> tuple[str, str]:
    """(bucket, key or prefix) of s3://BUCKET/KEY, the bucket name checked before any request."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri or "")
    if not match:
        raise InputError(f"{uri!r} is not an s3:// URI", hint=hint)
    validate_bucket_name(match[1])
    return match[1], match[2]


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
    evaluate aws:SecureTransport and would then deny every request under a TLS-only policy).
    The creator (``ensure_private_bucket``) and the audit both decide by this."""
    url = s3.meta.endpoint_url or ""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return url.startswith("https://") and (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"))


def ensure_private_bucket(s3, bucket: str, region: str | None = None, tls_only: bool | None = None) -> bool:
    """Create ``bucket`` if missing, private and safe: all public access blocked, default encryption,
    versioning, and (on AWS, or with ``tls_only``) a policy that denies requests without TLS. An existing bucket is checked instead:
    if it is public, AwsError (rcyc never puts models or images into a public bucket).
    Returns True if it was created."""
    validate_bucket_name(bucket)
    try:
        s3.head_bucket(Bucket=bucket)
        exists = True
    except Exception as exc:
        code = client_error_code(exc)
        if code == "301":
            raise AwsError(f"bucket {bucket} is in another region", kind="WrongRegion", hint=HINTS["301"]) from None
        if code in ("403", "AccessDenied"):
            raise AwsError(f"cannot use bucket {bucket}: {code}", kind="AccessDenied",
                           hint="The bucket belongs to someone else, or the credentials lack s3:ListBucket on it.") from None
        if code not in NOT_FOUND_CODES:
            raise translate(f"reach S3 for bucket {bucket}", exc) from None
        exists = False
    if exists:
        refuse_if_public(s3, bucket)
        return False
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
    """Why ``bucket`` is public as AWS defines it (``public``); empty when it is not."""

    def read(what, call, missing):
        try:
            return call(Bucket=bucket)
        except Exception as exc:
            code = client_error_code(exc)
            if code in missing:
                return None
            if code not in ("AccessDenied", "403"):  # a missing bucket, expired credentials, a fault: as they are
                raise translate(f"check whether bucket {bucket} is public ({what})", exc) from None
            raise AwsError(f"cannot check whether bucket {bucket} is public ({what}): {code}", kind="AccessDenied",
                           hint="rcyc refuses to upload to a bucket it cannot check: allow s3:GetBucketPublicAccessBlock, "
                           "s3:GetBucketAcl and s3:GetBucketPolicy (docs/cloud.md).") from None

    block = (read("public access block", s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",))
             or {}).get("PublicAccessBlockConfiguration", {})
    acl = None if block.get("IgnorePublicAcls") else read("ACL", s3.get_bucket_acl, ())
    policy = None if block.get("RestrictPublicBuckets") else (read("policy", s3.get_bucket_policy, ("NoSuchBucketPolicy",)) or {}).get("Policy")
    return public.reasons(block, acl, policy)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def refuse_if_public(s3, bucket: str) -> None:
    reasons = public_reasons(s3, bucket)
    if reasons:
        raise AwsError(f"bucket {bucket} is public ({'; '.join(reasons)}); rcyc will not upload to it", kind="PublicBucket",
                       hint=f"Block public access on it (aws s3api put-public-access-block --bucket {bucket} ...), "
                       "or use another --bucket.")

