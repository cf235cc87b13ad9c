"""Whether a bucket is public, as AWS defines it (S3 user guide, "The meaning of public").

One definition, used both by the refusal to upload into a public bucket (``buckets.refuse_if_public``) and by
``rcyc doctor --security``:

- an ACL grant to the AllUsers or AuthenticatedUsers group is public, unless the bucket's public access
  block has IgnorePublicAcls;
- a bucket policy is public if it has an Allow statement for a wildcard principal ("*", {"AWS": "*"}, an ARN
  with a wildcard) or a NotPrincipal, unless that statement is pinned by a condition on a fixed value of
  one of the keys AWS lists (aws:SourceIp with no range wider than /8 for IPv4 or /32 for IPv6,
  aws:SourceArn, aws:SourceVpc, aws:SourceVpce, aws:SourceAccount, aws:SourceOwner, aws:PrincipalOrgID,
  aws:PrincipalAccount, aws:PrincipalArn, aws:userid, s3:DataAccessPointArn, s3:DataAccessPointAccount,
  s3:x-amz-server-side-encryption-aws-kms-key-id); the bucket's RestrictPublicBuckets neutralises it.

A condition pins only with an operator that requires a match (StringEquals, ArnLike, IpAddress, ... never a
negated one, never ...IfExists, never Null) and values without wildcards. Any other condition, such as
``{"Bool": {"aws:SecureTransport": "true"}}``, leaves the grant open to anyone.
"""

from __future__ import annotations

import ipaddress
import json

PUBLIC_GRANTEES = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers",
}

# Condition keys (lower case: IAM compares keys case-insensitively) whose fixed values pin a wildcard grant.
PINNING_KEYS = frozenset(k.lower() for k in (
    "aws:SourceArn", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceAccount", "aws:SourceOwner", "aws:PrincipalOrgID",
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:userid", "s3:DataAccessPointArn", "s3:DataAccessPointAccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
))
SOURCE_IP = "aws:sourceip"
# Operators that require the request's value to match one of the listed values.
MATCHING_OPERATORS = frozenset(op.lower() for op in (
    "StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike",
))
IP_OPERATORS = frozenset({"ipaddress"})
WIDEST_PREFIX = {4: 8, 6: 32}  # a range at least this wide is "anyone" for AWS


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard(value) -> bool:
    return not isinstance(value, str) or "*" in value or "?" in value


def _anyone(principal) -> bool:
    """A principal element naming everyone: "*", {"AWS": "*"}, or an ARN/account with a wildcard."""
    if principal is None:
        return False
    if isinstance(principal, str):
        return _wildcard(principal)
    if isinstance(principal, dict):
        return any(_wildcard(value) for values in principal.values() for value in _as_list(values))
    return True  # not a principal AWS would accept: assume the worst


def _narrow_cidr(value) -> bool:
    try:
        network = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return network.prefixlen > WIDEST_PREFIX[network.version]


def _pins(operator: str, key: str, values) -> bool:
    """Does this one condition restrict the statement to fixed callers?"""
    op = operator.lower()
    if op.endswith("ifexists"):
        return False  # a request without the key passes
    if op.startswith("forallvalues:"):
        return False  # an empty or missing multi-valued key passes
    if op.startswith("foranyvalue:"):
        op = op.split(":", 1)[1]
    values = _as_list(values)
    if not values:
        return False
    key = key.lower()
    if key == SOURCE_IP:
        return op in IP_OPERATORS and all(_narrow_cidr(v) for v in values)
    if key in PINNING_KEYS:
        return op in MATCHING_OPERATORS and not any(_wildcard(v) for v in values)
    return False


def statement_is_public(statement: dict) -> bool:
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    if "NotPrincipal" in statement:
        return True  # everyone except a few
    if not _anyone(statement.get("Principal")):
        return False
    conditions = statement.get("Condition") or {}
    if not isinstance(conditions, dict):
        return True
    # The conditions of one statement all have to hold: one pinning condition is enough.
    return not any(_pins(operator, key, values)
                   for operator, block in conditions.items() if isinstance(block, dict)
                   for key, values in block.items())


def policy_reasons(policy: str | dict | None) -> list[str]:
    """Why this bucket policy is public (empty when it is not)."""
    if not policy:
        return []
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return ["its policy is not valid JSON (cannot tell who it allows)"]
    statements = _as_list(policy.get("Statement", []) if isinstance(policy, dict) else [])
    reasons = []
    for statement in statements:
        if statement_is_public(statement):
            name = f" {statement['Sid']}" if isinstance(statement, dict) and statement.get("Sid") else ""
            actions = ", ".join(str(a) for a in _as_list(statement.get("Action", statement.get("NotAction", "?"))))
            why = "with no condition AWS counts as restricting" if statement.get("Condition") else "with no condition"
            reasons.append(f"its policy statement{name} allows {actions} to anyone ({why})")
    return reasons


def acl_reasons(acl: dict | None) -> list[str]:
    """Why this bucket ACL is public (empty when it is not)."""
    reasons = []
    for grant in (acl or {}).get("Grants", []):
        group = PUBLIC_GRANTEES.get((grant.get("Grantee") or {}).get("URI", ""))
        if group:
            reasons.append(f"its ACL grants {grant.get('Permission')} to {group}")
    return reasons


def reasons(block: dict | None, acl: dict | None, policy: str | dict | None) -> list[str]:
    """Why a bucket with this public access block, ACL and policy is public; [] when it is not."""
    block = block or {}
    found = []
    if not block.get("IgnorePublicAcls"):
        found += acl_reasons(acl)
    if not block.get("RestrictPublicBuckets"):
        found += policy_reasons(policy)
    return found
