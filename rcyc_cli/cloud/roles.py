"""An existing role deploy is asked to use: what it grants beyond rcyc's policy (read with policyuniverse,
as the audit does), refused by name unless the user adopts the role, which rcyc then narrows to its own
policy and trust, saying what it could not remove."""

from __future__ import annotations

import json

from rcyc_core.errors import InputError

from . import policies
from .aws import get_or_none, translate
from .functions import LAMBDA_TRUST_POLICY, ROLE_POLICY_NAME


def extra_grants(iam, role_name: str, policy: dict) -> list[dict]:
    """Each thing ``role_name`` grants beyond ``policy`` and Lambda's trust: {"kind", "name", "detail"}.
    Empty for a role that does not exist yet."""
    from .audit import role_documents

    role = (get_or_none(f"read the role {role_name}", iam.get_role, ("NoSuchEntity",), RoleName=role_name) or {}).get("Role")
    if role is None:
        return []
    account = role["Arn"].split(":")[4]
    extras = []
    documents, _ = role_documents(iam, role_name)
    for where, document in documents:
        if where == f"inline policy {ROLE_POLICY_NAME}":
            continue  # rcyc's own: rewritten to ``policy`` by the deploy
        kind, name = where.split(" policy ", 1)
        for grant in policies.extra_grants(where, document, policy):
            extras.append({"kind": f"{kind} policy", "name": name, "detail": str(grant)})
    trust = policies.document(role.get("AssumeRolePolicyDocument") or {})
    for who in policies.assumers(trust, account):
        extras.append({"kind": "trust", "name": who, "detail": f"the trust policy lets {who} assume {role_name}"})
    return extras


def refusal(role_name: str, extras: list[dict]) -> InputError:
    return InputError(f"the role {role_name} grants more than rcyc's policy: " + "; ".join(e["detail"] for e in extras),
                      kind="RoleTooWide",
                      hint="Pass --adopt-role to narrow it to rcyc's policy (rcyc says what it removes), or --role-name NEW.")


def narrow(iam, role_name: str, extras: list[dict], dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove each extra grant (delete the inline policy, detach the managed one, reset the trust policy to
    Lambda's). Returns (what was (or would be) removed, what was left and why)."""
    done, left = [], []
    for extra in {(e["kind"], "" if e["kind"] == "trust" else e["name"]): e for e in extras}.values():
        if extra["kind"] == "inline policy":
            what, call = f"deleted the inline policy {extra['name']}", lambda e=extra: iam.delete_role_policy(
                RoleName=role_name, PolicyName=e["name"])
        elif extra["kind"] == "managed policy":
            arn = next(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
                       if p["PolicyName"] == extra["name"])
            what, call = f"detached the managed policy {extra['name']}", lambda a=arn: iam.detach_role_policy(
                RoleName=role_name, PolicyArn=a)
        else:
            what, call = f"reset the trust policy (removed {extra['name']})", lambda: iam.update_assume_role_policy(
                RoleName=role_name, PolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))
        if dry_run:
            done.append("would have " + what)
            continue
        try:
            call()
            done.append(what)
        except Exception as exc:
            left.append(f"{extra['detail']} ({translate('narrow the role', exc).message})")
    return done, left
