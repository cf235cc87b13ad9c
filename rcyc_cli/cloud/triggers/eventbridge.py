"""S3 -> EventBridge -> Lambda: the bucket's EventBridge delivery turned on, a rule on the default bus that
matches Object Created of this bucket under this prefix, the function as its only target, and the invoke
permission for exactly that rule. Removing it turns the bucket's delivery off again only if rcyc turned it on
(another rule may read it)."""

from __future__ import annotations

import hashlib
import json

from rcyc_core.s3 import client_error_code

from ..aws import aws_call, get_or_none, translate

TARGET_ID = "rcyc-function"
STATEMENT_PREFIX = "rcyc-eventbridge-"
TURNED_ON = "rcyc turned on the bucket's EventBridge delivery"


def rule_name(function: str) -> str:
    return f"rcyc-{function}"[:64]


def pattern(bucket: str, prefix: str) -> dict:
    return {"source": ["aws.s3"], "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}}}


def _rule(events, name: str) -> dict | None:
    return get_or_none(f"read the rule {name}", events.describe_rule, ("ResourceNotFoundException",), Name=name)


def _notifications(s3, bucket: str) -> dict:
    config = aws_call(f"read the notifications of {bucket}", s3.get_bucket_notification_configuration, Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def _statements(lam, function: str) -> list[dict]:
    found = get_or_none(f"read the resource policy of {function}", lam.get_policy, ("ResourceNotFoundException",),
                        FunctionName=function)
    statements = json.loads(found["Policy"]).get("Statement", []) if found else []
    return [s for s in statements if str(s.get("Sid", "")).startswith(STATEMENT_PREFIX)]


def ensure(aws, function_arn: str, bucket: str, prefix: str, dry_run: bool = False) -> dict:
    function = function_arn.split(":")[6]
    name = rule_name(function)
    summary = {"bucket": bucket, "prefix": prefix, "rule": name}
    if dry_run:
        return {**summary, "action": "configure"}
    events, lam, s3 = aws.client("events"), aws.client("lambda"), aws.client("s3")
    existing = _rule(events, name)
    config = _notifications(s3, bucket)
    turned_on = TURNED_ON in ((existing or {}).get("Description") or "")
    if "EventBridgeConfiguration" not in config:
        config["EventBridgeConfiguration"] = {}
        aws_call(f"turn on EventBridge delivery for {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
                 NotificationConfiguration=config)
        turned_on = True
    wanted = pattern(bucket, prefix)
    # EventBridge keeps at most 512 characters of a description: a long prefix is shortened, the flag kept.
    description = f"rcyc: uploads of s3://{bucket}/{prefix[:256]} to {function}" + (f"; {TURNED_ON}" if turned_on else "")
    same = (existing is not None and json.loads(existing.get("EventPattern") or "{}") == wanted
            and existing.get("State") == "ENABLED" and existing.get("Description") == description)
    arn = existing["Arn"] if same else aws_call(
        f"put the rule {name}", events.put_rule, Name=name, EventPattern=json.dumps(wanted), State="ENABLED",
        Description=description, Tags=[] if existing else [{"Key": "rcyc:managed", "Value": "true"}])["RuleArn"]
    targets = aws_call(f"read the targets of {name}", events.list_targets_by_rule, Rule=name).get("Targets", [])
    if [(t["Id"], t["Arn"]) for t in targets] != [(TARGET_ID, function_arn)]:
        stale = [t["Id"] for t in targets if t["Id"] != TARGET_ID]
        if stale:
            aws_call(f"remove other targets of {name}", events.remove_targets, Rule=name, Ids=stale)
        aws_call(f"target {function}", events.put_targets, Rule=name, Targets=[{"Id": TARGET_ID, "Arn": function_arn}])
        same = False
    statement_id = STATEMENT_PREFIX + hashlib.sha256(arn.encode()).hexdigest()[:12]
    present = _statements(lam, function)
    if statement_id not in [s["Sid"] for s in present]:
        try:
            lam.add_permission(FunctionName=function, StatementId=statement_id, Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=arn)
        except Exception as exc:
            if client_error_code(exc) != "ResourceConflictException":
                raise translate("allow EventBridge to invoke the function", exc) from None
        same = False
    for statement in present:
        if statement["Sid"] != statement_id:
            _remove_permission(lam, function, statement["Sid"])
    return {**summary, "action": "unchanged" if same else ("created" if existing is None else "configured"), "rule_arn": arn}


def current(aws, bucket: str, function: str) -> dict | None:
    if not _statements(aws.client("lambda"), function):  # no permission for a rule: not wired (nor asked to read rules)
        return None
    rule = _rule(aws.client("events"), rule_name(function))
    if rule is None:
        return None
    detail = json.loads(rule.get("EventPattern") or "{}").get("detail", {})
    keys = detail.get("object", {}).get("key", [{}])
    if detail.get("bucket", {}).get("name") != [bucket]:
        return None
    return {"prefix": (keys[0] if keys and isinstance(keys[0], dict) else {}).get("prefix", "")}


def remove(aws, function: str, bucket: str, dry_run: bool = False, thorough: bool = True) -> dict | None:
    """The rule, its target, the invoke permission (and the bucket's delivery if rcyc turned it on), whole.
    Not ``thorough``: only when an rcyc invoke permission for EventBridge says this way is wired."""
    events, lam, s3 = aws.client("events"), aws.client("lambda"), aws.client("s3")
    name = rule_name(function)
    function_exists = get_or_none(f"read the function {function}", lam.get_function_configuration,
                                  ("ResourceNotFoundException",), FunctionName=function) is not None
    statements = _statements(lam, function) if function_exists else []
    if not statements and not thorough:
        return None
    rule = _rule(events, name)
    if rule is None and not statements:
        return None
    detail = json.loads((rule or {}).get("EventPattern") or "{}").get("detail", {})
    summary = {"bucket": bucket, "prefix": (detail.get("object", {}).get("key") or [{}])[0].get("prefix"),
               "action": "remove" if dry_run else "removed"}
    if dry_run:
        return summary
    if rule is not None:
        targets = aws_call(f"read the targets of {name}", events.list_targets_by_rule, Rule=name).get("Targets", [])
        if targets:
            aws_call(f"remove the targets of {name}", events.remove_targets, Rule=name, Ids=[t["Id"] for t in targets])
        aws_call(f"delete the rule {name}", events.delete_rule, Name=name)
        if TURNED_ON in (rule.get("Description") or ""):
            config = _notifications(s3, bucket)
            config.pop("EventBridgeConfiguration", None)
            aws_call(f"turn off EventBridge delivery for {bucket}", s3.put_bucket_notification_configuration,
                     Bucket=bucket, NotificationConfiguration=config)
    for statement in statements:
        _remove_permission(lam, function, statement["Sid"])
    return summary


def _remove_permission(lam, function: str, statement_id: str) -> None:
    get_or_none(f"remove the EventBridge invoke permission of {function}", lam.remove_permission,
                ("ResourceNotFoundException",), FunctionName=function, StatementId=statement_id)


def audit(aws, bucket: str, function: str) -> list:
    from ..findings import Finding

    events = aws.client("events")
    if not _statements(aws.client("lambda"), function):  # EventBridge may not invoke it: not wired this way
        return []
    rule = _rule(events, rule_name(function))
    if rule is None:
        return [Finding("medium", "rule", f"EventBridge may invoke {function}, but its rule {rule_name(function)} is gone",
                        "rcyc deploy --trigger PREFIX --via eventbridge makes it whole (or --no-trigger removes the permission).")]
    findings = []
    wanted = json.loads(rule.get("EventPattern") or "{}")
    detail = wanted.get("detail") if isinstance(wanted, dict) and isinstance(wanted.get("detail"), dict) else {}
    keys = (detail.get("object") or {}).get("key") if isinstance(detail.get("object"), dict) else None
    # A rule on the whole bucket also fires for every result the function writes (and every other object).
    prefixed = isinstance(keys, list) and len(keys) > 0 and all(
        isinstance(k, dict) and set(k) == {"prefix"} and isinstance(k["prefix"], str) and k["prefix"] for k in keys)
    narrow = (wanted.get("source") == ["aws.s3"] and wanted.get("detail-type") == ["Object Created"]
              and (detail.get("bucket") or {}).get("name") == [bucket] and prefixed)
    findings.append(Finding("ok", "rule: pattern", f"Object Created in s3://{bucket} under a prefix only") if narrow
                    else Finding("high", "rule: pattern", f"matches more than Object Created under a prefix of {bucket}: {json.dumps(wanted)[:200]}",
                                 "rcyc deploy --via eventbridge sets source aws.s3, Object Created, this bucket, the prefix."))
    targets = aws_call("read the rule's targets", events.list_targets_by_rule, Rule=rule["Name"]).get("Targets", [])
    mine = [t for t in targets if t["Arn"].split(":")[6:7] == [function]]
    findings.append(Finding("ok", "rule: targets", f"only {function}") if targets and len(mine) == len(targets)
                    else Finding("medium", "rule: targets", f"{len(targets) - len(mine)} other target(s)",
                                 "Remove targets rcyc did not set, or deploy --via eventbridge again."))
    statements = _statements(aws.client("lambda"), function)
    pinned = all(_source_arn(s) == rule["Arn"] for s in statements)
    findings.append(Finding("ok", "rule: invoke permission", "only this rule may invoke") if statements and pinned
                    else Finding("high", "rule: invoke permission", "EventBridge may invoke the function from another rule"
                                 if statements else "none: the rule cannot invoke the function",
                                 "rcyc deploy --via eventbridge grants exactly the rule's ARN."))
    return findings


def _source_arn(statement: dict) -> str | None:
    for block in (statement.get("Condition") or {}).values():
        if isinstance(block, dict):
            for key, value in block.items():
                if key.lower() == "aws:sourcearn":
                    return value
    return None
