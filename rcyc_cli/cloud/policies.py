"""IAM policy analysis for the audit and for deploy's role check, on policyuniverse: its catalogue of every
IAM action expands wildcards (``s3:Get*``, ``*``), action case (``S3:*``) and ``NotAction`` (everything but
...), and it reads principals (``"*"``, ``{"AWS": [...]}``, services) and ARNs the way IAM does.

Chosen over parliament (a linter: it names malformed or risky patterns, but does not answer "what does this
role allow beyond X") and cloudsplaining (a whole-account report on policy_sentry's database: privilege
escalation and exfiltration paths, far heavier than a check of one role needs). Resource patterns are
compared by containment: a grant is within rcyc's policy only if every ARN it can match is matched by one of
rcyc's patterns (``b/?*`` and ``b/*`` reach every object, ``models/x/*`` stays inside ``models/*``).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Callable

LAMBDA_SERVICE = "lambda.amazonaws.com"
WILDCARDS = "*?"


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def document(value) -> dict:
    """A policy document as IAM returns it (a dict, JSON text, or URL-encoded JSON text)."""
    if isinstance(value, str):
        text = urllib.parse.unquote(value) if value.lstrip().startswith("%") else value
        try:
            value = json.loads(text)
        except ValueError:
            value = json.loads(urllib.parse.unquote(value))
    return value if isinstance(value, dict) else {}


def statements(doc: dict) -> list[dict]:
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


def actions(statement: dict) -> set[str]:
    """Every action the statement names, lower case, wildcards and NotAction expanded over IAM's catalogue
    (an unknown service's wildcard stays as it is written)."""
    from policyuniverse.expander_minimizer import get_actions_from_statement

    return {a.lower() for a in get_actions_from_statement(statement)}


def all_actions(service: str) -> set[str]:
    from policyuniverse import all_permissions

    return {a for a in all_permissions if a.startswith(service + ":")}


def resources(statement: dict) -> list[str]:
    """The ARN patterns a statement reaches (NotResource reaches everything but a few: as "*")."""
    return ["*"] if "NotResource" in statement else [str(r) for r in as_list(statement.get("Resource"))]


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.find(c) for c in WILDCARDS if c in pattern), default=len(pattern))
    return pattern[:cut]


def within(pattern: str, allowed: str) -> bool:
    """Every ARN ``pattern`` can match is matched by ``allowed`` (sufficient, never too generous): equal, or
    ``allowed`` ends in its only ``*`` and ``pattern`` cannot leave that prefix."""
    if pattern == allowed:
        return True
    if not allowed.endswith("*") or any(c in allowed[:-1] for c in WILDCARDS):
        return not any(c in pattern for c in WILDCARDS) and pattern == allowed
    return _literal_prefix(pattern).startswith(allowed[:-1])


@dataclass(frozen=True)
class Grant:
    """An Allow statement's reach beyond a reference policy."""

    where: str  # the policy's name (inline) or ARN (managed)
    actions: tuple[str, ...]  # as written
    resources: tuple[str, ...]
    beyond: str  # "actions" | "resources"

    def __str__(self) -> str:
        return f"{self.where} allows {', '.join(self.actions)} on {', '.join(self.resources)}"


def extra_grants(where: str, doc: dict, reference: dict,
                 also: Callable[[str, str], bool] | None = None) -> list[Grant]:
    """The Allow statements of ``doc`` that reach beyond ``reference`` (rcyc's own policy): an action it does
    not grant, or a granted action on a resource outside its resources. ``also(action, resource)`` admits
    more (lower-case action names)."""
    allowed: dict[str, list[str]] = {}
    for statement in statements(reference):
        for action in actions(statement):
            allowed.setdefault(action, []).extend(resources(statement))

    def ok(action: str, resource: str) -> bool:
        return any(within(resource, a) for a in allowed.get(action, ())) or bool(also and also(action, resource))

    found = []
    for statement in statements(doc):
        if statement.get("Effect") != "Allow":
            continue
        expanded = actions(statement)
        reached = tuple(resources(statement))
        if all(ok(action, r) for action in expanded for r in reached):
            continue
        written = tuple(str(a) for a in as_list(statement.get("Action"))) or tuple(
            f"everything but {a}" for a in as_list(statement.get("NotAction")))
        unknown = any(action not in allowed and not any(ok(action, r) for r in reached) for action in expanded)
        found.append(Grant(where, written, reached, "actions" if unknown else "resources"))
    return found


def principals(statement: dict) -> list[tuple[str, str]]:
    """(kind, value) of each principal: kind AWS, Service, Federated or "*"."""
    principal = statement.get("Principal")
    if "NotPrincipal" in statement:
        return [("*", "everyone but " + json.dumps(statement["NotPrincipal"]))]
    if principal == "*":
        return [("*", "*")]
    if isinstance(principal, dict):
        return [(kind, str(value)) for kind, values in principal.items() for value in as_list(values)]
    if isinstance(principal, str) and principal:  # an account id or ARN written without {"AWS": ...}
        return [("Service" if principal.endswith(".amazonaws.com") else "AWS", principal)]
    return []


def account_of(principal: str) -> str | None:
    from policyuniverse.arn import ARN

    if principal == "*":
        return "*"
    arn = ARN(principal)
    return None if arn.error else arn.account_number


def _has_source_condition(statement: dict) -> bool:
    keys = {key.lower() for block in (statement.get("Condition") or {}).values() if isinstance(block, dict) for key in block}
    return bool(keys & {"aws:sourcearn", "aws:sourceaccount", "aws:sourceowner"})


def describe(kind: str, value: str, account: str | None) -> str:
    if kind == "*" or value == "*":
        return "anyone (*)"
    if kind == "AWS":
        owner = account_of(value)
        if owner == "*" or "*" in value:
            return f"any account ({value})"
        return f"this account's {value}" if owner == account else f"another account ({value})"
    if kind == "Federated":
        return f"federated identities ({value})"
    return f"the service {value}"


def foreign_principals(doc: dict, account: str | None) -> list[str]:
    """Who an Allow statement lets in besides this account and its services bound to a source: "*"
    (anyone), another account, a federated identity, or a service without aws:SourceArn/SourceAccount
    (anyone's resource in that service could then use it: the confused deputy)."""
    found = []
    for statement in statements(doc):
        if statement.get("Effect") != "Allow":
            continue
        for kind, value in principals(statement):
            if kind == "Service" and _has_source_condition(statement):
                continue
            if kind == "AWS" and account_of(value) == account and "*" not in value:
                continue
            found.append(describe(kind, value, account))
    return found


def assumers(doc: dict, account: str | None, expected_service: str = LAMBDA_SERVICE) -> list[str]:
    """Everyone but ``expected_service`` a trust policy lets assume the role."""
    return [describe(kind, value, account) for statement in statements(doc) if statement.get("Effect") == "Allow"
            for kind, value in principals(statement) if (kind, value) != ("Service", expected_service)]


def _denies_plain_http(statement: dict) -> bool:
    for operator, block in (statement.get("Condition") or {}).items():
        if operator.lower() == "bool" and isinstance(block, dict):
            for key, value in block.items():
                if key.lower() == "aws:securetransport" and str(as_list(value)[0]).lower() == "false":
                    return True
    return False


def tls_only_gaps(doc: dict, bucket: str) -> list[str]:
    """What requests without TLS can still reach, statement by statement: every S3 action on the bucket and
    on its objects must be denied to everyone (Principal "*") by a Deny on aws:SecureTransport=false.
    Empty when the policy denies them all."""
    every = all_actions("s3")
    targets = {"the bucket": f"arn:aws:s3:::{bucket}", "its objects": f"arn:aws:s3:::{bucket}/*"}
    covered = {name: set() for name in targets}
    for statement in statements(doc):
        if statement.get("Effect") != "Deny" or not _denies_plain_http(statement):
            continue
        if not any(kind == "*" or value == "*" for kind, value in principals(statement)):
            continue
        denied = actions(statement)
        if "*" in denied or "s3:*" in denied:
            denied = every
        for name, arn in targets.items():
            if any(within(arn, r) for r in resources(statement)):
                covered[name] |= denied & every
    gaps = []
    for name in targets:
        missing = every - covered[name]
        if missing:
            sample = ", ".join(sorted(missing)[:3])
            gaps.append(f"{len(missing)} S3 actions on {name} ({sample}, ...)" if len(missing) < len(every)
                        else f"every S3 action on {name}")
    return gaps
