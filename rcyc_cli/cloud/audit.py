"""``rcyc doctor --security BUCKET[/FUNCTION]``: audit an existing setup against what rcyc would create.

Reads only (Get*/List* calls); lists findings with a severity and the fix. The audit is a list of checks:
``BUCKET_CHECKS`` run on the bucket, ``FUNCTION_CHECKS`` on the function (when one is named and exists);
another module adds its own with ``@check("function")`` (and is listed in ``PLUGINS``). IAM documents are
read with policyuniverse (``policies``), environment values with detect-secrets' plugins. Never prints a
secret: a variable that looks like one is reported by name and kind only.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from rcyc_core.errors import InputError
from rcyc_core.s3 import NOT_FOUND_CODES

from . import buckets, policies
from .aws import Aws, get_or_none
from .findings import Finding

SEVERITIES = ("high", "medium", "low", "ok", "not applicable")  # high and medium fail the audit (exit 8)
FUNCTION_NAME = re.compile(r"^([A-Za-z0-9_-]{1,64}|arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?)$")
# Modules that add checks of their own (imported when the audit runs).
PLUGINS: list[str] = []


@dataclass
class Target:
    """What the checks look at, read once and shared."""

    aws: Aws
    bucket: str
    function: str | None = None
    _cache: dict = field(default_factory=dict)

    @cached_property
    def s3(self):
        return self.aws.client("s3")

    @cached_property
    def lam(self):
        return self.aws.client("lambda")

    @cached_property
    def iam(self):
        return self.aws.client("iam")

    @cached_property
    def config(self) -> dict | None:
        return _read(self.lam.get_function_configuration, ("ResourceNotFoundException",), FunctionName=self.function)

    @cached_property
    def role_name(self) -> str:
        return self.config["Role"].rsplit("/", 1)[-1]

    @cached_property
    def account(self) -> str | None:
        found = re.match(r"arn:aws[a-z-]*:iam::(\d{12}):", self.config.get("Role", "")) if self.config else None
        return found.group(1) if found else None

    @cached_property
    def role(self) -> dict:
        return (_read(self.iam.get_role, ("NoSuchEntity",), RoleName=self.role_name) or {}).get("Role") or {}


Check = Callable[[Target], list[Finding]]
BUCKET_CHECKS: list[Check] = []
FUNCTION_CHECKS: list[Check] = []


def check(scope: str) -> Callable[[Check], Check]:
    """Register a check on the bucket ("bucket") or on the function ("function")."""

    def register(fn: Check) -> Check:
        (BUCKET_CHECKS if scope == "bucket" else FUNCTION_CHECKS).append(fn)
        return fn

    return register


def _read(call, missing: tuple[str, ...], **kwargs):
    return get_or_none(f"audit ({call.__name__})", call, missing, **kwargs)


# --------------------------------------------------------------------------------------------------
# the bucket


@check("bucket")
def public_access(t: Target) -> list[Finding]:
    block = (_read(t.s3.get_public_access_block, ("NoSuchPublicAccessBlockConfiguration",), Bucket=t.bucket) or {}
             ).get("PublicAccessBlockConfiguration", {})
    off = sorted(name for name in buckets.BLOCK_ALL if not block.get(name))
    reasons = buckets.public_reasons(t.s3, t.bucket)
    return [Finding("high", "public access block", f"off: {', '.join(off)}",
                    f"aws s3api put-public-access-block --bucket {t.bucket} (all four true)") if off
            else Finding("ok", "public access block", "all four settings on"),
            Finding("high", "public", "; ".join(reasons), "Remove the public grant or policy statement.") if reasons
            else Finding("ok", "public", "not public")]


@check("bucket")
def encryption_and_versioning(t: Target) -> list[Finding]:
    encryption = _read(t.s3.get_bucket_encryption, ("ServerSideEncryptionConfigurationNotFoundError",), Bucket=t.bucket)
    versioning = _read(t.s3.get_bucket_versioning, (), Bucket=t.bucket) or {}
    return [Finding("ok", "default encryption", "on") if encryption
            else Finding("medium", "default encryption", "off", "Turn on SSE-S3 (AES256) or SSE-KMS."),
            Finding("ok", "versioning", "enabled") if versioning.get("Status") == "Enabled"
            else Finding("medium", "versioning", versioning.get("Status", "never enabled"),
                         "Enable versioning so an overwritten model can be recovered.")]


@check("bucket")
def tls_only(t: Target) -> list[Finding]:
    if not buckets.is_aws_endpoint(t.s3):
        # rcyc's creator skips the TLS-only policy on a local endpoint (an emulator would deny every plain-HTTP
        # request under it); the audit agrees and does not count it.
        return [Finding("not applicable", "TLS only", f"a local endpoint ({t.s3.meta.endpoint_url}): not checked")]
    found = _read(t.s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=t.bucket)
    try:
        document = policies.document(found["Policy"]) if found else {}
    except ValueError:
        document = {}
    gaps = policies.tls_only_gaps(document, t.bucket)
    return [Finding("medium", "TLS only", "requests without TLS can still reach " + "; ".join(gaps),
                    'Add a Deny of "s3:*" on the bucket and "bucket/*" to Principal "*" with Condition '
                    '{"Bool": {"aws:SecureTransport": "false"}}.') if gaps
            else Finding("ok", "TLS only", "every S3 action on the bucket and its objects is denied without TLS")]


@check("bucket")
def model_lock(t: Target) -> list[Finding]:
    """Object Lock: whether a published model version's files are protected from being replaced or deleted
    (rcyc detects a change at promote and at every load either way)."""
    found = _read(t.s3.get_object_lock_configuration, ("ObjectLockConfigurationNotFoundError",), Bucket=t.bucket) or {}
    config = found.get("ObjectLockConfiguration") or {}
    rule = (config.get("Rule") or {}).get("DefaultRetention") or {}
    if config.get("ObjectLockEnabled") == "Enabled" and rule:
        length = rule.get("Days") and f"{rule['Days']} days" or f"{rule.get('Years')} years"
        return [Finding("ok", "models lock-protected", f"Object Lock, default {rule.get('Mode')} retention of {length}")]
    return [Finding("low", "models lock-protected",
                    "no Object Lock default retention: whoever may write the bucket can replace or delete a published "
                    "version's files (rcyc refuses such a version at promote and at load)",
                    "Create the bucket with Object Lock and a default GOVERNANCE retention on models/, or limit "
                    "s3:PutObject/s3:DeleteObject on models/* to the publisher.")]


# --------------------------------------------------------------------------------------------------
# the function


SECRET_PLUGINS = ("AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector",
                  "CloudantDetector", "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector",
                  "IbmCloudIamDetector", "IbmCosHmacDetector", "JwtTokenDetector", "KeywordDetector", "MailchimpDetector",
                  "NpmDetector", "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector",
                  "SlackDetector", "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector",
                  "TelegramBotTokenDetector", "TwilioKeyDetector")
HIGH_ENTROPY = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
HEX = re.compile(r"[0-9a-fA-F]{32,}")
# Names that say "secret" whatever the value's shape (detect-secrets' keyword plugin reads code, not names)
SECRET_NAME = re.compile(r"(SECRET|PASSW(OR)?D|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)


def secrets_in(env: dict) -> dict[str, str]:
    """{variable: kind} for every value detect-secrets' plugins take for a secret (named detectors on
    ``NAME="value"``, and its high-entropy measure on a bare token of 20+ characters). No plugin verifies
    anything over the network."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
    from detect_secrets.settings import transient_settings

    entropy, hex_entropy = Base64HighEntropyString(limit=4.5), HexHighEntropyString(limit=3.0)
    found = {}
    with transient_settings({"plugins_used": [{"name": name} for name in SECRET_PLUGINS], "filters_used": []}):
        for name, value in sorted(env.items()):
            value = str(value)
            kinds = sorted({secret.type for secret in scan_line(f'{name}="{value}"')})
            if not kinds and HIGH_ENTROPY.fullmatch(value) and entropy.calculate_shannon_entropy(value) >= entropy.entropy_limit:
                kinds = ["High Entropy String"]
            if not kinds and HEX.fullmatch(value) and hex_entropy.calculate_shannon_entropy(value) >= hex_entropy.entropy_limit:
                kinds = ["Hex High Entropy String"]
            if not kinds and value and SECRET_NAME.search(name) and not name.startswith("RCYC_"):
                kinds = ["a secret's name"]
            if kinds:
                found[name] = ", ".join(kinds)
    return found


@check("function")
def environment_secrets(t: Target) -> list[Finding]:
    env = (t.config.get("Environment") or {}).get("Variables", {})
    leaked = secrets_in(env)
    return [Finding("high", "secrets in environment",
                    "; ".join(f"{name} looks like a secret ({kind})" for name, kind in leaked.items()),
                    "Remove them: the function's role gives it AWS credentials; keep other secrets in Secrets Manager.")
            if leaked else Finding("ok", "secrets in environment", "none")]


@check("function")
def function_url(t: Target) -> list[Finding]:
    url = _read(t.lam.get_function_url_config, ("ResourceNotFoundException",), FunctionName=t.function)
    if not url:
        return [Finding("ok", "function URL", "none")]
    if url.get("AuthType") == "NONE":
        return [Finding("high", "function URL", f"{url.get('FunctionUrl')}: AuthType NONE, anyone on the internet can invoke",
                        "Delete it (aws lambda delete-function-url-config) or use AuthType AWS_IAM.")]
    return [Finding("ok", "function URL", "AuthType AWS_IAM")]


@check("function")
def invoke_policy(t: Target) -> list[Finding]:
    found = _read(t.lam.get_policy, ("ResourceNotFoundException",), FunctionName=t.function)
    document = policies.document(found["Policy"]) if found else {}
    who = policies.foreign_principals(document, t.account)
    return [Finding("high", "resource policy (invoke)", "lets " + "; ".join(who) + " invoke the function",
                    f"aws lambda remove-permission --function-name {t.function} --statement-id <Sid> (rcyc's trigger "
                    "needs only s3.amazonaws.com with aws:SourceArn of its bucket)")
            if who else Finding("ok", "resource policy (invoke)", "only this account's services, each bound to a source")]


@check("function")
def role_trust(t: Target) -> list[Finding]:
    document = policies.document(t.role.get("AssumeRolePolicyDocument") or {})
    who = policies.assumers(document, t.account)
    return [Finding("high", "role: trust policy", f"{t.role_name} can be assumed by " + "; ".join(who),
                    f"Let only {policies.LAMBDA_SERVICE} assume it (aws iam update-assume-role-policy).")
            if who else Finding("ok", "role: trust policy", f"only {policies.LAMBDA_SERVICE} can assume {t.role_name}")]


def role_documents(iam, role_name: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """([(where, document)] of every inline and attached managed policy, [managed policy names])."""
    documents, managed = [], []
    for name in (_read(iam.list_role_policies, ("NoSuchEntity",), RoleName=role_name) or {}).get("PolicyNames", []):
        found = _read(iam.get_role_policy, ("NoSuchEntity",), RoleName=role_name, PolicyName=name)
        if found:
            documents.append((f"inline policy {name}", policies.document(found["PolicyDocument"])))
    attached = (_read(iam.list_attached_role_policies, ("NoSuchEntity",), RoleName=role_name) or {}).get("AttachedPolicies", [])
    for policy in attached:
        managed.append(policy["PolicyName"])
        meta = (_read(iam.get_policy, ("NoSuchEntity",), PolicyArn=policy["PolicyArn"]) or {}).get("Policy") or {}
        version = _read(iam.get_policy_version, ("NoSuchEntity",), PolicyArn=policy["PolicyArn"],
                        VersionId=meta.get("DefaultVersionId", "v1")) if meta else None
        if version:
            documents.append((f"managed policy {policy['PolicyName']}", policies.document(version["PolicyVersion"]["Document"])))
    return documents, managed


def _named_prefix(bucket: str) -> Callable[[str, str], bool]:
    """GetObject/PutObject on objects under a named prefix of this bucket (never the whole bucket, another
    bucket or a wildcard before the prefix ends)."""
    head = f"arn:aws:s3:::{bucket}/"

    def allowed(action: str, resource: str) -> bool:
        rest = resource[len(head):] if resource.startswith(head) else None
        return (action in ("s3:getobject", "s3:putobject") and bool(rest) and rest.endswith("*")
                and not any(c in rest[:-1] for c in policies.WILDCARDS) and rest[:-1].endswith("/"))

    return allowed


@check("function")
def role_privilege(t: Target) -> list[Finding]:
    documents, managed = role_documents(t.iam, t.role_name)
    from .functions import role_policy

    from . import triggers

    reference = role_policy(t.bucket)  # and reads/writes under any named prefix (the trigger's, the results')
    via = (triggers.current(t.aws, t.bucket, t.function) or {}).get("via")
    reference["Statement"] += triggers.role_statements(via, t.aws, t.function)  # sqs: its own queue
    extra = [grant for where, doc in documents
             for grant in policies.extra_grants(where, doc, reference, _named_prefix(t.bucket))]
    return [Finding("high", "role: managed policies", ", ".join(managed),
                    "Detach them; rcyc's inline policy is all the function needs (rcyc deploy --adopt-role does it).")
            if managed else Finding("ok", "role: managed policies", "none attached"),
            Finding("high", "role: least privilege", "; ".join(str(g) for g in extra),
                    "Limit the role to s3:GetObject on models/* and images/*, s3:PutObject on the results prefix and "
                    "the log writes (rcyc deploy --adopt-role narrows it).")
            if extra else Finding("ok", "role: least privilege", f"{t.role_name} stays within {t.bucket}'s prefixes and the logs")]


@check("function")
def trigger_parts(t: Target) -> list[Finding]:
    """The queue (its policy, dead-letter queue, mapping) and the EventBridge rule, where rcyc set them up."""
    from . import triggers

    return triggers.audit(t.aws, t.bucket, t.function)


# --------------------------------------------------------------------------------------------------


def parse_target(target: str) -> tuple[str, str | None]:
    bucket, _, function = target.partition("/")
    buckets.validate_bucket_name(bucket)
    if function and not FUNCTION_NAME.match(function):
        raise InputError(f"{function!r} is not a Lambda function name", kind="InvalidFunctionName",
                         hint="Give BUCKET or BUCKET/FUNCTION: a function name is 1-64 letters, digits, '-' or '_' (or its ARN).")
    return bucket, function or None


def run(target: str, region: str | None = None) -> list[Finding]:
    bucket, function = parse_target(target)
    for module in PLUGINS:
        importlib.import_module(module)
    t = Target(Aws(region), bucket, function)
    if _read(t.s3.head_bucket, NOT_FOUND_CODES, Bucket=bucket) is None:
        findings = [Finding("high", "bucket", f"{bucket} does not exist", "rcyc upload-model creates it, private.")]
    else:
        findings = [finding for fn in BUCKET_CHECKS for finding in fn(t)]
    if function:
        if t.config is None:
            findings.append(Finding("high", "function", f"{function} does not exist", "rcyc deploy --tag TAG creates it."))
        else:
            findings += [finding for fn in FUNCTION_CHECKS for finding in fn(t)]
    return findings
