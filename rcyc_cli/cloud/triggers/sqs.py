"""S3 -> SQS -> Lambda: the queue (encrypted, visibility six times the function's timeout, as AWS advises),
its dead-letter queue (after MAX_RECEIVE_COUNT receives a message goes there instead of retrying forever),
a queue policy that lets only this bucket of this account send, the bucket's notification to the queue,
and the event source mapping with ReportBatchItemFailures (the function names the messages to retry)."""

from __future__ import annotations

import json

from rcyc_core.s3 import client_error_code

from ..aws import aws_call, get_or_none, translate

MAX_RECEIVE_COUNT = 5  # receives before a message goes to the dead-letter queue
DLQ_RETENTION = str(14 * 24 * 3600)  # the most SQS keeps a message: time to look at what failed
MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
RECEIVE_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]  # what Lambda's poller needs


def names(function: str) -> tuple[str, str]:
    return f"{function}-uploads", f"{function}-uploads-dlq"


def rule_id(function: str) -> str:
    return f"rcyc-{function}-sqs"


def queue_arn(aws, name: str) -> str:
    return f"arn:aws:sqs:{aws.region}:{aws.account}:{name}"


def queue_policy(arn: str, bucket: str, account: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyThisBucketSends", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}, "StringEquals": {"aws:SourceAccount": account}}}]}


def role_statements(aws, function: str) -> list[dict]:
    return [{"Sid": "ReceiveUploads", "Effect": "Allow", "Action": RECEIVE_ACTIONS, "Resource": queue_arn(aws, names(function)[0])}]


def _url(sqs, name: str) -> str | None:
    found = get_or_none(f"find the queue {name}", sqs.get_queue_url, MISSING_QUEUE, QueueName=name)
    return found["QueueUrl"] if found else None


def _same(wanted: str, current: str | None) -> bool:
    try:
        return json.loads(wanted) == json.loads(current or "")
    except ValueError:
        return wanted == current


def _ensure_queue(sqs, name: str, attributes: dict[str, str]) -> tuple[str, str, str]:
    """(url, arn, action): the queue with exactly these attributes."""
    url = _url(sqs, name)
    if url is None:
        url = aws_call(f"create the queue {name}", sqs.create_queue, QueueName=name, Attributes=attributes,
                       tags={"rcyc:managed": "true"})["QueueUrl"]
        action = "created"
    else:
        current = aws_call(f"read the queue {name}", sqs.get_queue_attributes, QueueUrl=url,
                           AttributeNames=["All"])["Attributes"]
        changed = {k: v for k, v in attributes.items() if not _same(v, current.get(k))}
        if changed:
            aws_call(f"update the queue {name}", sqs.set_queue_attributes, QueueUrl=url, Attributes=changed)
        action = "updated" if changed else "unchanged"
    arn = aws_call(f"read the queue {name}", sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"], action


def _notifications(s3, bucket: str) -> dict:
    config = aws_call(f"read the notifications of {bucket}", s3.get_bucket_notification_configuration, Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def _mappings(lam, arn: str, function: str) -> list[dict]:
    found = get_or_none(f"read the event source mappings of {arn}", lam.list_event_source_mappings,
                        ("ResourceNotFoundException",), EventSourceArn=arn)
    return [m for m in (found or {}).get("EventSourceMappings", []) if m.get("FunctionArn", "").split(":")[6:7] == [function]]


def ensure(aws, function_arn: str, bucket: str, prefix: str, batch_size: int, dry_run: bool = False) -> dict:
    function = function_arn.split(":")[6]
    queue, dlq = names(function)
    summary = {"bucket": bucket, "prefix": prefix, "queue": queue, "dead_letter_queue": dlq, "batch_size": batch_size,
               "max_receive_count": MAX_RECEIVE_COUNT}
    if dry_run:
        return {**summary, "action": "configure"}
    sqs, lam, s3 = aws.client("sqs"), aws.client("lambda"), aws.client("s3")
    timeout = aws_call(f"read {function}", lam.get_function_configuration, FunctionName=function).get("Timeout", 3)
    _, dlq_arn, dlq_action = _ensure_queue(sqs, dlq, {"MessageRetentionPeriod": DLQ_RETENTION, "SqsManagedSseEnabled": "true"})
    _, arn, queue_action = _ensure_queue(sqs, queue, {
        "VisibilityTimeout": str(max(30, 6 * timeout)), "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        "Policy": json.dumps(queue_policy(queue_arn(aws, queue), bucket, aws.account))})

    config = _notifications(s3, bucket)
    rule = {"Id": rule_id(function), "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}
    others = [r for r in config.get("QueueConfigurations", []) if r.get("Id") != rule["Id"]]
    if others + [rule] != config.get("QueueConfigurations", []):
        config["QueueConfigurations"] = others + [rule]
        aws_call(f"configure the notifications of {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
                 NotificationConfiguration=config)

    wanted = {"BatchSize": batch_size, "FunctionResponseTypes": ["ReportBatchItemFailures"],
              "MaximumBatchingWindowInSeconds": 1 if batch_size > 10 else 0}  # SQS needs a window above 10
    mappings = _mappings(lam, arn, function)
    if not mappings:
        aws_call(f"map the queue {queue} to {function}", lam.create_event_source_mapping, EventSourceArn=arn,
                 FunctionName=function_arn, Enabled=True, **wanted)
        mapping_action = "created"
    else:
        for extra in mappings[1:]:  # one mapping per queue and function: more would deliver twice
            aws_call("remove a second event source mapping", lam.delete_event_source_mapping, UUID=extra["UUID"])
        current = mappings[0]
        stale = any(current.get(k, 0 if k == "MaximumBatchingWindowInSeconds" else None) != v for k, v in wanted.items())
        if stale or current.get("State") in ("Disabled", "Disabling"):
            aws_call(f"update the mapping of {queue}", lam.update_event_source_mapping, UUID=current["UUID"], Enabled=True,
                     **wanted)
        mapping_action = "updated" if stale or len(mappings) > 1 else "unchanged"
    actions = {queue_action, dlq_action, mapping_action}
    action = "created" if actions == {"created"} else "unchanged" if actions == {"unchanged"} else "configured"
    return {**summary, "action": action, "queue_arn": arn, "dead_letter_queue_arn": dlq_arn}


def current(aws, bucket: str, function: str) -> dict | None:
    rules = [r for r in _notifications(aws.client("s3"), bucket).get("QueueConfigurations", []) if r.get("Id") == rule_id(function)]
    if not rules:
        return None
    prefixes = [f.get("Value") for f in rules[0].get("Filter", {}).get("Key", {}).get("FilterRules", [])
                if f.get("Name", "").lower() == "prefix"]
    return {"prefix": prefixes[0] if prefixes else ""}


def remove(aws, function: str, bucket: str, dry_run: bool = False, thorough: bool = True) -> dict | None:
    """The queue, its dead-letter queue, the mapping and the bucket's rule, whole (None: there were none).
    Not ``thorough``: only when the bucket's rule says this way is wired (a deploy that did not ask about
    queues needs no permission to read them)."""
    sqs, lam, s3 = aws.client("sqs"), aws.client("lambda"), aws.client("s3")
    wired = current(aws, bucket, function)
    if wired is None and not thorough:
        return None
    urls = {name: _url(sqs, name) for name in names(function)}
    mappings = _mappings(lam, queue_arn(aws, names(function)[0]), function)
    if wired is None and not any(urls.values()) and not mappings:
        return None
    summary = {"bucket": bucket, "prefix": (wired or {}).get("prefix"), "action": "remove" if dry_run else "removed"}
    if dry_run:
        return summary
    for mapping in mappings:
        try:
            lam.delete_event_source_mapping(UUID=mapping["UUID"])
        except Exception as exc:
            if client_error_code(exc) != "ResourceNotFoundException":
                raise translate("remove the event source mapping", exc) from None
    if wired is not None:
        config = _notifications(s3, bucket)
        config["QueueConfigurations"] = [r for r in config.get("QueueConfigurations", []) if r.get("Id") != rule_id(function)]
        aws_call(f"configure the notifications of {bucket}", s3.put_bucket_notification_configuration, Bucket=bucket,
                 NotificationConfiguration=config)
    for name, url in urls.items():
        if url:
            get_or_none(f"delete the queue {name}", sqs.delete_queue, MISSING_QUEUE, QueueUrl=url)
    return summary


def audit(aws, bucket: str, function: str) -> list:
    from ..findings import Finding

    sqs = aws.client("sqs")
    queue, _ = names(function)
    if current(aws, bucket, function) is None:  # not wired this way: nothing to audit (and no queue read needed)
        return []
    url = _url(sqs, queue)
    if url is None:
        return [Finding("high", "queue", f"the bucket notifies {queue}, which does not exist",
                        "rcyc deploy --trigger PREFIX --via sqs makes it whole (or --no-trigger removes the rule).")]
    attributes = aws_call(f"read the queue {queue}", sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["All"])["Attributes"]
    findings = [_policy_finding(attributes.get("Policy"), bucket)]
    redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
    count = int(redrive.get("maxReceiveCount") or 0)
    findings.append(Finding("ok", "queue: dead-letter queue", f"after {count} receives") if redrive and count <= 10
                    else Finding("medium", "queue: dead-letter queue", "none, or more than 10 receives",
                                 "rcyc deploy --via sqs sets one after 5 receives: a broken message must not retry forever."))
    mappings = _mappings(aws.client("lambda"), attributes.get("QueueArn", ""), function)
    partial = all("ReportBatchItemFailures" in (m.get("FunctionResponseTypes") or []) for m in mappings)
    findings.append(Finding("ok", "queue: partial batch failures", "ReportBatchItemFailures on") if mappings and partial
                    else Finding("high", "queue: partial batch failures", "no mapping with ReportBatchItemFailures",
                                 "rcyc deploy --via sqs: without it one bad image retries its whole batch."))
    return findings


def _policy_finding(policy: str | None, bucket: str):
    """Only S3, and only for this bucket, may send: every Allow must name the S3 service and pin the source ARN."""
    from ..findings import Finding
    from ..buckets import as_list

    try:
        statements = as_list(json.loads(policy).get("Statement", [])) if policy else []
    except (ValueError, AttributeError):
        statements = ["unreadable"]
    loose = []
    for statement in statements:
        if not isinstance(statement, dict):
            loose.append("an unreadable statement")
            continue
        if str(statement.get("Effect")).lower() == "deny":
            continue  # anything that is not plainly a Deny is read as an Allow
        principal = statement.get("Principal")
        services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
        only_s3 = isinstance(principal, dict) and set(principal) == {"Service"} and services == ["s3.amazonaws.com"]
        negated = {"NotAction", "NotPrincipal", "NotResource"} & set(statement)
        if not only_s3 or negated or not _pins_bucket(statement, bucket):
            loose.append(f"{statement.get('Sid') or 'a statement'} allows {json.dumps(principal)} without pinning s3://{bucket}")
        elif [str(a).lower() for a in as_list(statement.get("Action"))] != ["sqs:sendmessage"]:
            loose.append(f"{statement.get('Sid') or 'a statement'} lets S3 do {json.dumps(statement.get('Action'))}, not only sqs:SendMessage")
    if loose:
        return Finding("high", "queue: policy", "; ".join(loose),
                       f"Allow only s3.amazonaws.com sqs:SendMessage with Condition ArnEquals aws:SourceArn arn:aws:s3:::{bucket}.")
    return Finding("ok", "queue: policy", f"only s3://{bucket} may send")


def _pins_bucket(statement: dict, bucket: str) -> bool:
    from ..buckets import as_list

    condition = statement.get("Condition")
    for operator, block in (condition.items() if isinstance(condition, dict) else ()):
        if operator.lower() in ("arnequals", "arnlike", "stringequals") and isinstance(block, dict):
            for key, value in block.items():
                if key.lower() == "aws:sourcearn" and as_list(value) == [f"arn:aws:s3:::{bucket}"]:
                    return True
    return False
