"""The function in AWS: its least-privilege IAM role, the Lambda function itself (created, or brought to
what is asked), and the S3 trigger."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse

from rcyc_core.errors import AwsError, InputError
from rcyc_core.s3 import client_error_code

from ..defaults import DEFAULT_ARCHITECTURE, IMAGES_PREFIX, MODELS_PREFIX
from .aws import aws_call, get_or_none, translate


ROLE_POLICY_NAME = "rcyc-least-privilege"


LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def role_policy(bucket: str, results_prefix: str | None = None, trigger_prefix: str | None = None) -> dict:
    """The function's only permissions: read the model and image prefixes of one bucket, write its logs,
    and (with --trigger) write results under the results prefix."""
    read = [f"arn:aws:s3:::{bucket}/{MODELS_PREFIX}*", f"arn:aws:s3:::{bucket}/{IMAGES_PREFIX}*"]
    if trigger_prefix and not trigger_prefix.startswith(IMAGES_PREFIX):
        read.append(f"arn:aws:s3:::{bucket}/{trigger_prefix}*")
    statements = [
        {"Sid": "ReadModelsAndImages", "Effect": "Allow", "Action": "s3:GetObject", "Resource": read},
        {"Sid": "WriteLogs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
    ]
    if results_prefix:
        statements.append({"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": f"arn:aws:s3:::{bucket}/{results_prefix}*"})
    return {"Version": "2012-10-17", "Statement": statements}


def policy_document(value) -> dict:
    if isinstance(value, str):
        value = json.loads(urllib.parse.unquote(value))
    return value


def ensure_role(iam, name: str, policy: dict, dry_run: bool = False, trust: dict = LAMBDA_TRUST_POLICY,
                policy_name: str = ROLE_POLICY_NAME,
                description: str = "rcyc: the classifier function's least-privilege role") -> dict:
    """The function's (or, with ``trust``, another service's) role with exactly rcyc's inline policy.
    Returns {"name", "arn", "action"}."""

    role = (get_or_none(f"read the role {name}", iam.get_role, ("NoSuchEntity",), RoleName=name) or {}).get("Role")
    if role is None:
        if dry_run:
            return {"name": name, "arn": None, "action": "create"}
        role = aws_call(f"create the role {name}", iam.create_role, RoleName=name,
                        AssumeRolePolicyDocument=json.dumps(trust),
                        Description=description,
                        Tags=[{"Key": "rcyc:managed", "Value": "true"}])["Role"]
        aws_call(f"attach the policy to {name}", iam.put_role_policy, RoleName=name, PolicyName=policy_name,
                 PolicyDocument=json.dumps(policy))
        return {"name": name, "arn": role["Arn"], "action": "created"}
    found = get_or_none(f"read the policy of {name}", iam.get_role_policy, ("NoSuchEntity",), RoleName=name,
                        PolicyName=policy_name)
    current = policy_document(found["PolicyDocument"]) if found else None
    if current == policy:
        return {"name": name, "arn": role["Arn"], "action": "unchanged"}
    if not dry_run:
        aws_call(f"update the policy of {name}", iam.put_role_policy, RoleName=name, PolicyName=policy_name,
                 PolicyDocument=json.dumps(policy))
    return {"name": name, "arn": role["Arn"], "action": "update" if dry_run else "updated"}


def _wait(lam, waiter: str, function: str, what: str) -> dict:
    from botocore.exceptions import WaiterError

    try:
        lam.get_waiter(waiter).wait(FunctionName=function, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    except Exception as exc:
        error = (getattr(exc, "last_response", None) or {}).get("Error") if isinstance(exc, WaiterError) else None
        if not isinstance(exc, WaiterError) or error:
            # Not a terminal state of the function: a refusal (credentials, permissions) while asking.
            if error:
                from botocore.exceptions import ClientError

                exc = ClientError({"Error": error}, "GetFunction")
            raise translate(f"wait for {function}", exc) from None
        config = aws_call(f"read {function}", lam.get_function_configuration, FunctionName=function)
        reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or "no reason given"
        code = config.get("LastUpdateStatusReasonCode") or config.get("StateReasonCode") or "Failed"
        raise AwsError(f"{what} failed: {code}: {reason}", kind="FunctionUpdateFailed",
                       hint="Lambda's reason is above; fix it and run rcyc deploy again.") from None
    return aws_call(f"read {function}", lam.get_function_configuration, FunctionName=function)


def _latest_version(lam, function: str) -> str | None:
    versions = []
    paginator = lam.get_paginator("list_versions_by_function")
    for page in aws_call(f"list the versions of {function}", lambda: list(paginator.paginate(FunctionName=function))):
        versions += [int(v["Version"]) for v in page.get("Versions", []) if v["Version"].isdigit()]
    return str(max(versions)) if versions else None


def _create_function(lam, name: str, image_uri: str | None, role_arn: str | None, memory: int, timeout: int,
                     env: dict[str, str], architecture: str) -> dict:
    kwargs = dict(FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri}, Role=role_arn,
                  MemorySize=memory, Timeout=timeout, Environment={"Variables": env}, Architectures=[architecture],
                  Description="rcyc: recyclable-item classifier", Tags={"rcyc:managed": "true"})
    for attempt in range(20):
        try:
            lam.create_function(**kwargs)
            break
        except Exception as exc:
            # A new role takes a few seconds to reach Lambda ("cannot be assumed"): wait for it.
            if client_error_code(exc) == "InvalidParameterValueException" and "assume" in str(exc) and attempt < 19:
                time.sleep(3)
                continue
            raise translate(f"create the function {name}", exc) from None
    config = _wait(lam, "function_active_v2", name, f"creating {name}")
    version = aws_call(f"publish a version of {name}", lam.publish_version, FunctionName=name)["Version"]
    return _function_summary(config, version, "created", ["create"])


def _configuration_update(config: dict, role_arn: str | None, memory: int, timeout: int, env: dict[str, str]) -> dict:
    """What update_function_configuration must change for the function to be as asked (nothing: {})."""
    old_env = (config.get("Environment") or {}).get("Variables", {})
    # The user's own variables stay; rcyc's are exactly this deploy's (a dropped --trigger drops its prefix).
    new_env = {**{k: v for k, v in old_env.items() if not k.startswith("RCYC_")}, **env}
    update = {}
    if config.get("MemorySize") != memory:
        update["MemorySize"] = memory
    if config.get("Timeout") != timeout:
        update["Timeout"] = timeout
    if old_env != new_env:
        update["Environment"] = {"Variables": new_env}
    if role_arn and config.get("Role") != role_arn:
        update["Role"] = role_arn
    return update


def ensure_function(lam, name: str, image_uri: str | None, role_arn: str | None, memory: int, timeout: int,
                    env: dict[str, str], architecture: str, dry_run: bool = False) -> dict:
    """Create the image function, or bring its code and configuration to what is asked. Returns a
    summary with "action": created | updated | unchanged (create / update / nothing in a dry run).
    The architecture is part of what is asked: a function of another architecture gets its code updated
    with this one, and the result is read back."""

    current = get_or_none(f"read the function {name}", lam.get_function, ("ResourceNotFoundException",), FunctionName=name)
    if current is None:
        if dry_run:
            return {"name": name, "action": "create", "changes": ["create"]}
        return _create_function(lam, name, image_uri, role_arn, memory, timeout, env, architecture)

    config = current["Configuration"]
    if config.get("PackageType") != "Image":
        raise AwsError(f"the function {name} is a {config.get('PackageType')} function; rcyc deploys image functions",
                       kind="WrongPackageType", hint="Pass another --function name (rcyc creates it).")
    update = _configuration_update(config, role_arn, memory, timeout, env)
    changes = [f"configuration: {', '.join(sorted(update))}"] if update else []
    code_changes = image_uri is not None and current.get("Code", {}).get("ImageUri") != image_uri
    old_arch = (config.get("Architectures") or [DEFAULT_ARCHITECTURE])[0]
    arch_changes = old_arch != architecture
    if code_changes or image_uri is None:
        changes.append("code" if image_uri else "code (if the image differs)")
    if arch_changes:
        changes.append(f"architecture: {old_arch} -> {architecture}")
        if image_uri is None and not dry_run:
            raise AwsError(f"cannot change {name} to {architecture} without an image", kind="FunctionUpdateFailed")
    if dry_run:
        return {"name": name, "arn": config["FunctionArn"], "action": "update" if changes else "nothing", "changes": changes,
                "image_uri": current.get("Code", {}).get("ImageUri")}
    if not update and not code_changes and not arch_changes:
        return _function_summary(config, _latest_version(lam, name), "unchanged", [], current.get("Code", {}).get("ImageUri"))
    _wait(lam, "function_updated_v2", name, f"the last update of {name}")  # Lambda takes one update at a time
    if update:
        aws_call(f"update the configuration of {name}", lam.update_function_configuration, FunctionName=name, **update)
        _wait(lam, "function_updated_v2", name, f"updating the configuration of {name}")
    if code_changes or arch_changes:
        aws_call(f"update the code of {name}", lam.update_function_code, FunctionName=name, ImageUri=image_uri,
                 Architectures=[architecture])
    config = _wait(lam, "function_updated_v2", name, f"updating {name}")
    if config.get("LastUpdateStatus") not in (None, "Successful"):
        raise AwsError(f"updating {name} failed: {config.get('LastUpdateStatusReason', 'no reason given')}", kind="FunctionUpdateFailed")
    now = (config.get("Architectures") or [DEFAULT_ARCHITECTURE])[0]
    if now != architecture:
        raise AwsError(f"{name} is still {now} after the update to {architecture}", kind="FunctionUpdateFailed",
                       hint="Lambda did not take the architecture: check the image's platform and run rcyc deploy again.")
    version = aws_call(f"publish a version of {name}", lam.publish_version, FunctionName=name)["Version"]
    return _function_summary(config, version, "updated", changes, image_uri)


def _function_summary(config: dict, version: str | None, action: str, changes: list[str], image_uri: str | None = None) -> dict:
    return {"name": config["FunctionName"], "arn": config["FunctionArn"], "version": version, "action": action,
            "changes": changes, "state": config.get("State"), "last_update_status": config.get("LastUpdateStatus"),
            "memory": config.get("MemorySize"), "timeout": config.get("Timeout"), "image_uri": image_uri,
            "role": config.get("Role"), "architecture": (config.get("Architectures") or [DEFAULT_ARCHITECTURE])[0]}


TRIGGER_RULE_PREFIX = "rcyc-"
TRIGGER_STATEMENT_PREFIX = "rcyc-s3-trigger-"


def _function_name(arn: str) -> str:
    parts = (arn or "").split(":")
    return parts[6] if len(parts) > 6 else arn


def _notifications(s3, bucket: str) -> dict:
    config = aws_call(f"read the notifications of {bucket}", s3.get_bucket_notification_configuration, Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def _rule_prefix(rule: dict) -> str | None:
    for item in (rule.get("Filter") or {}).get("Key", {}).get("FilterRules", []):
        if item.get("Name", "").lower() == "prefix":
            return item.get("Value")
    return None


def current_trigger(s3, bucket: str, function: str) -> dict | None:
    """The S3 trigger rcyc set on ``bucket`` for ``function`` (read back from the bucket's notification
    configuration): {"prefix", "rules"}, or None."""
    rules = [r for r in _notifications(s3, bucket).get("LambdaFunctionConfigurations", [])
             if r.get("Id", "").startswith(TRIGGER_RULE_PREFIX) and _function_name(r.get("LambdaFunctionArn", "")) == function]
    if not rules:
        return None
    return {"prefix": _rule_prefix(rules[-1]) or "", "rules": [r["Id"] for r in rules]}


def _statement_id(bucket: str, prefix: str) -> str:
    return TRIGGER_STATEMENT_PREFIX + hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:12]


def _trigger_statements(lam, function: str) -> list[str]:
    found = get_or_none(f"read the resource policy of {function}", lam.get_policy, ("ResourceNotFoundException",),
                        FunctionName=function)
    if not found:
        return []
    statements = json.loads(found["Policy"]).get("Statement", [])
    return [st.get("Sid", "") for st in statements if str(st.get("Sid", "")).startswith(TRIGGER_STATEMENT_PREFIX)]


def check_trigger_free(s3, bucket: str, prefix: str, function: str) -> None:
    """InputError (TriggerTaken) when another function's (or target's) notification on ``bucket`` already
    covers a prefix overlapping ``prefix``: a deploy never takes a trigger over silently."""
    config = _notifications(s3, bucket)
    for kind, key in (("LambdaFunctionConfigurations", "LambdaFunctionArn"), ("QueueConfigurations", "QueueArn"),
                      ("TopicConfigurations", "TopicArn")):
        for rule in config.get(kind, []):
            target = rule.get(key, "")
            if (kind == "LambdaFunctionConfigurations" and _function_name(target) == function) or \
                    target.endswith(f":{function}-uploads"):  # this function's own (its --via sqs queue)
                continue
            other = _rule_prefix(rule) or ""
            if prefix.startswith(other) or other.startswith(prefix):
                raise InputError(f"s3://{bucket}/{other} already sends its new objects to {target.rsplit(':', 1)[-1]}: "
                                 f"a trigger on {prefix!r} would overlap it", kind="TriggerTaken",
                                 hint="Remove that trigger first (rcyc deploy --function OTHER --no-trigger) or pick "
                                 "another --trigger prefix.")


def add_trigger(lam, s3, function_arn: str, bucket: str, prefix: str, account: str, dry_run: bool = False) -> dict:
    """S3 notifications for new objects under ``prefix`` invoke the function: exactly one rcyc rule for this
    function on the bucket and its invoke permission (a trigger on another prefix is replaced whole)."""
    function = _function_name(function_arn)
    check_trigger_free(s3, bucket, prefix, function)
    statement_id = _statement_id(bucket, prefix)
    config = _notifications(s3, bucket)
    rule_id = f"{TRIGGER_RULE_PREFIX}{prefix.strip('/').replace('/', '-') or 'all'}"
    mine = [r for r in config.get("LambdaFunctionConfigurations", [])
            if r.get("Id", "").startswith(TRIGGER_RULE_PREFIX) and _function_name(r.get("LambdaFunctionArn", "")) == function]
    others = [r for r in config.get("LambdaFunctionConfigurations", []) if r not in mine and r.get("Id") != rule_id]
    rule = {"Id": rule_id, "LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}
    if dry_run:
        return {"bucket": bucket, "prefix": prefix, "action": "configure"}
    present = _trigger_statements(lam, function)
    stale = [sid for sid in present if sid != statement_id]
    try:
        if statement_id not in present:
                lam.add_permission(FunctionName=function_arn, StatementId=statement_id, Action="lambda:InvokeFunction",
                               Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}", SourceAccount=account)
    except Exception as exc:
        if client_error_code(exc) != "ResourceConflictException":  # already there
            raise translate("allow S3 to invoke the function", exc) from None
    config["LambdaFunctionConfigurations"] = others + [rule]
    aws_call(f"configure the notifications of {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
             NotificationConfiguration=config)
    for sid in stale:
        _remove_permission(lam, function, sid)
    return {"bucket": bucket, "prefix": prefix, "action": "configured", "rule": rule_id}


def remove_trigger(lam, s3, function: str, bucket: str, dry_run: bool = False) -> dict | None:
    """Remove this function's S3 trigger whole: its notification rule(s) on the bucket and the invoke
    permission(s) rcyc added. None when there is none."""
    existing = current_trigger(s3, bucket, function)
    statements = _trigger_statements(lam, function) if get_or_none(
        f"read the function {function}", lam.get_function_configuration, ("ResourceNotFoundException",), FunctionName=function) else []
    if existing is None and not statements:
        return None
    summary = {"bucket": bucket, "prefix": (existing or {}).get("prefix"), "action": "remove" if dry_run else "removed"}
    if dry_run:
        return summary
    if existing:
        config = _notifications(s3, bucket)
        config["LambdaFunctionConfigurations"] = [r for r in config.get("LambdaFunctionConfigurations", [])
                                                  if r.get("Id") not in existing["rules"]]
        aws_call(f"configure the notifications of {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
                 NotificationConfiguration=config)
    for sid in statements:
        _remove_permission(lam, function, sid)
    return summary


def _remove_permission(lam, function: str, statement_id: str) -> None:
    get_or_none(f"remove the S3 invoke permission of {function}", lam.remove_permission, ("ResourceNotFoundException",),
                FunctionName=function, StatementId=statement_id)
