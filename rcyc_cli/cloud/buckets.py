"""Buckets rcyc uses: created private and safe, and never written to when public."""

from __future__ import annotations

import json

from rcyc_core.errors import AwsError
from rcyc_core.s3 import NOT_FOUND_CODES, client_error_code

from .aws import HINTS, aws_call


PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")



BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}



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
        if code not in NOT_FOUND_CODES:
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

