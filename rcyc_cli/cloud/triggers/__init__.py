"""How uploads reach the function (``deploy --trigger PREFIX --via s3|sqs|eventbridge``): each way is made
whole, read back, and removed whole; switching ways removes the old one. docs/events.md has the table.

- s3: the bucket notifies the function directly (``functions.add_trigger``).
- sqs: bucket -> queue (with a dead-letter queue) -> event source mapping with ReportBatchItemFailures.
- eventbridge: the bucket's EventBridge delivery -> a rule (this bucket, this prefix, Object Created) -> the function.
"""

from __future__ import annotations

from ..functions import add_trigger, current_trigger, remove_trigger
from . import eventbridge, sqs

VIAS = ("s3", "sqs", "eventbridge")


def current(aws, bucket: str, function: str) -> dict | None:
    """The way rcyc wired uploads of ``bucket`` to ``function``: {"via", "prefix"}, or None."""
    s3 = aws.client("s3")
    found = current_trigger(s3, bucket, function)
    if found is not None:
        return {"via": "s3", "prefix": found["prefix"]}
    for via, module in (("sqs", sqs), ("eventbridge", eventbridge)):
        found = module.current(aws, bucket, function)
        if found is not None:
            return {"via": via, **found}
    return None


def role_statements(via: str | None, aws, function: str) -> list[dict]:
    """What the function's role needs for this way (sqs: receive and delete on its own queue only)."""
    return sqs.role_statements(aws, function) if via == "sqs" else []


def converge(via: str, aws, function_arn: str, bucket: str, prefix: str, batch_size: int, dry_run: bool = False) -> dict:
    """Uploads under ``prefix`` reach the function ``via`` this way, and no other way rcyc set up."""
    function = function_arn.split(":")[6]
    removed = [part for other in VIAS if other != via for part in [_remove(other, aws, function, bucket, dry_run, False)] if part]
    if via == "s3":
        summary = add_trigger(aws.client("lambda"), aws.client("s3"), function_arn, bucket, prefix, aws.account, dry_run)
    elif via == "sqs":
        summary = sqs.ensure(aws, function_arn, bucket, prefix, batch_size, dry_run)
    else:
        summary = eventbridge.ensure(aws, function_arn, bucket, prefix, dry_run)
    summary["via"] = via
    if removed:
        summary["replaced"] = removed
    return summary


def remove(aws, function: str, bucket: str, dry_run: bool = False) -> dict | None:
    """Remove every way rcyc wired uploads to ``function`` (None when there was none)."""
    removed = [part for via in VIAS for part in [_remove(via, aws, function, bucket, dry_run)] if part]
    if not removed:
        return None
    return {"bucket": bucket, "prefix": removed[0].get("prefix"), "action": removed[0]["action"],
            "via": ", ".join(r["via"] for r in removed)}


def _remove(via: str, aws, function: str, bucket: str, dry_run: bool, thorough: bool = True) -> dict | None:
    """Remove one way; not ``thorough``: only if its cheap sign (the bucket's rule, the invoke permission) shows."""
    if via == "s3":
        lam = aws.client("lambda")
        from ..aws import get_or_none

        if get_or_none(f"read the function {function}", lam.get_function_configuration, ("ResourceNotFoundException",),
                       FunctionName=function) is None:
            return None
        found = remove_trigger(lam, aws.client("s3"), function, bucket, dry_run)
    else:
        found = (sqs if via == "sqs" else eventbridge).remove(aws, function, bucket, dry_run, thorough)
    return {**found, "via": via} if found else None


def audit(aws, bucket: str, function: str) -> list:
    """Findings on the queue (its policy, dead-letter queue, mapping) and the rule, where rcyc set them up."""
    return sqs.audit(aws, bucket, function) + eventbridge.audit(aws, bucket, function)
