"""``rcyc doctor --security BUCKET[/FUNCTION]``: audit an existing setup against what rcyc would create.

Reads only (Get*/List* calls); lists findings with a severity and the fix. Never prints a secret: an
environment variable that looks like one is reported by name only.
"""

from __future__ import annotations

import json
import re

from rcyc_core.s3 import NOT_FOUND_CODES

from . import buckets
from .aws import Aws, get_or_none
from .buckets import as_list
from .findings import Finding
from .functions import policy_document

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
SECRET_VALUE = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
ALLOWED_S3_ACTIONS = {"s3:GetObject", "s3:PutObject"}


def _read(call, missing: tuple[str, ...], **kwargs):
    return get_or_none(f"audit ({call.__name__})", call, missing, **kwargs)


def audit_bucket(s3, bucket: str) -> list[Finding]:
    findings = []
    if _read(s3.head_bucket, NOT_FOUND_CODES, Bucket=bucket) is None:
        return [Finding("high", "bucket", f"{bucket} does not exist", "rcyc upload-model creates it, private.")]
    block = (_read(s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",), Bucket=bucket) or {}
             ).get("PublicAccessBlockConfiguration", {})
    off = sorted(name for name in buckets.BLOCK_ALL if not block.get(name))
    findings.append(Finding("high", "public access block", f"off: {', '.join(off)}",
                            f"aws s3api put-public-access-block --bucket {bucket} (all four true)") if off
                    else Finding("ok", "public access block", "all four settings on"))
    reasons = buckets.public_reasons(s3, bucket)
    findings.append(Finding("high", "public", "; ".join(reasons), "Remove the public grant or policy statement.") if reasons
                    else Finding("ok", "public", "not public"))
    encryption = _read(s3.get_bucket_encryption, ("ServerSideEncryptionConfigurationNotFoundError",), Bucket=bucket)
    findings.append(Finding("ok", "default encryption", "on") if encryption
                    else Finding("medium", "default encryption", "off", "Turn on SSE-S3 (AES256) or SSE-KMS."))
    versioning = _read(s3.get_bucket_versioning, (), Bucket=bucket) or {}
    findings.append(Finding("ok", "versioning", "enabled") if versioning.get("Status") == "Enabled"
                    else Finding("medium", "versioning", versioning.get("Status", "never enabled"),
                                 "Enable versioning so an overwritten model can be recovered."))
    if not buckets.is_aws_endpoint(s3):
        # rcyc's creator skips the TLS-only policy on a local endpoint (an emulator would deny every plain-HTTP
        # request under it); the audit agrees and does not count it.
        findings.append(Finding("not applicable", "TLS only", f"a local endpoint ({s3.meta.endpoint_url}): not checked"))
        return findings
    policy = _read(s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=bucket)
    try:
        statements = json.loads(policy["Policy"]).get("Statement", []) if policy else []
    except (ValueError, AttributeError):
        statements = []
    tls = any(isinstance(st, dict) and st.get("Effect") == "Deny" and _denies_plain_http(st)
              for st in as_list(statements))
    findings.append(Finding("ok", "TLS only", "requests without TLS are denied") if tls
                    else Finding("medium", "TLS only", "no policy denies requests without TLS",
                                 'Add a Deny statement with Condition {"Bool": {"aws:SecureTransport": "false"}}.'))
    return findings


def _denies_plain_http(statement: dict) -> bool:
    conditions = statement.get("Condition") or {}
    for operator, block in conditions.items() if isinstance(conditions, dict) else ():
        if operator.lower() == "bool" and isinstance(block, dict):
            for key, value in block.items():
                if key.lower() == "aws:securetransport" and str(as_list(value)[0]).lower() == "false":
                    return _anyone(statement.get("Principal"))
    return False


def _anyone(principal) -> bool:
    return principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS")))


def audit_function(lam, iam, bucket: str, function: str) -> list[Finding]:
    config = _read(lam.get_function_configuration, ("ResourceNotFoundException",), FunctionName=function)
    if config is None:
        return [Finding("high", "function", f"{function} does not exist", "rcyc deploy --tag TAG creates it.")]
    findings = []
    env = (config.get("Environment") or {}).get("Variables", {})
    leaked = sorted(name for name, value in env.items() if SECRET_NAME.search(name) or SECRET_VALUE.search(str(value)))
    findings.append(Finding("high", "secrets in environment", f"variables {', '.join(leaked)} look like credentials",
                            "Remove them: the function's role gives it credentials.") if leaked
                    else Finding("ok", "secrets in environment", "none"))
    url = _read(lam.get_function_url_config, ("ResourceNotFoundException",), FunctionName=function)
    if url and url.get("AuthType") == "NONE":
        findings.append(Finding("high", "function URL", "a public URL with AuthType NONE", "Delete it or use AWS_IAM auth."))
    role_name = config["Role"].rsplit("/", 1)[-1]
    attached = (_read(iam.list_attached_role_policies, ("NoSuchEntity",), RoleName=role_name) or {}).get("AttachedPolicies", [])
    findings.append(Finding("high", "role: managed policies", ", ".join(p["PolicyName"] for p in attached),
                            "Detach them; rcyc's inline policy is all the function needs.") if attached
                    else Finding("ok", "role: managed policies", "none attached"))
    problems = []
    for name in (_read(iam.list_role_policies, ("NoSuchEntity",), RoleName=role_name) or {}).get("PolicyNames", []):
        document = policy_document(_read(iam.get_role_policy, (), RoleName=role_name, PolicyName=name)["PolicyDocument"])
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            actions = as_list(statement.get("Action"))
            resources = as_list(statement.get("Resource"))
            if any(a in ("*", "s3:*") or (a.startswith("s3:") and a not in ALLOWED_S3_ACTIONS) for a in actions):
                problems.append(f"{name} allows {', '.join(actions)}")
            elif any(a.startswith("s3:") for a in actions):
                wide = [r for r in resources if not _within_bucket_prefixes(r, bucket)]
                if wide:
                    problems.append(f"{name} reaches {', '.join(wide)}")
    findings.append(Finding("high", "role: least privilege", "; ".join(problems),
                            "Limit S3 to GetObject on models/* and images/* (PutObject on the results prefix).") if problems
                    else Finding("ok", "role: least privilege", f"inline policies of {role_name} stay within {bucket}'s prefixes"))
    return findings


def _within_bucket_prefixes(resource: str, bucket: str) -> bool:
    """An object ARN under a prefix of this bucket (never the whole bucket, another bucket or "*")."""
    prefix = f"arn:aws:s3:::{bucket}/"
    return resource.startswith(prefix) and resource != prefix + "*" and "*" not in resource[len(prefix):-1]


def run(target: str, region: str | None = None) -> list[Finding]:
    bucket, _, function = target.partition("/")
    buckets.validate_bucket_name(bucket)
    aws = Aws(region)
    findings = audit_bucket(aws.client("s3"), bucket)
    if function:
        findings += audit_function(aws.client("lambda"), aws.client("iam"), bucket, function)
        from . import triggers

        findings += triggers.audit(aws, bucket, function)
    return findings
