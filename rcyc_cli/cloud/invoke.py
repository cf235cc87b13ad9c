"""Invoking the deployed function (or an emulator at an endpoint) with an S3 event for some keys."""

from __future__ import annotations

import json
import time

from rcyc_core.errors import FunctionError

from ..defaults import DEFAULT_FUNCTION, LOCAL_CREDENTIALS, LOCAL_REGION
from ..invocation import decode_reply, log_tail_lines
from .aws import Aws, aws_call


def invoke(keys: list[str], bucket: str, function: str | None = None, endpoint_url: str | None = None,
           region: str | None = None, timeout: int = 900) -> dict:
    """Invoke the deployed function (or an emulator at ``endpoint_url``) with an S3 event for ``keys``.

    Returns {"response", "invocation": {...}, "log_tail": [...]}; FunctionError if the function failed."""
    import boto3

    from rcyc_core import events

    from .aws import client_config
    from .buckets import validate_bucket_name

    validate_bucket_name(bucket)
    event = events.make_event(bucket, list(keys))
    config = client_config(read=timeout + 30, attempts=1)
    if endpoint_url:
        # An emulator: never send the user's own credentials to it.
        lam = boto3.client("lambda", endpoint_url=endpoint_url, region_name=LOCAL_REGION, config=config, **LOCAL_CREDENTIALS)
        function = function or "function"
    else:
        aws = Aws(region)
        lam = aws.session.client("lambda", region_name=aws.region, config=config)
        function = function or DEFAULT_FUNCTION
    started = time.perf_counter()
    reply = aws_call(f"invoke {function}", lam.invoke, FunctionName=function, InvocationType="RequestResponse",
                     LogType="Tail", Payload=json.dumps(event).encode())
    wall_ms = (time.perf_counter() - started) * 1000
    raw = reply["Payload"].read().decode("utf-8", "replace")
    log_tail = log_tail_lines(reply.get("LogResult"))
    info = {"function": function, "endpoint": endpoint_url or "aws", "status": reply.get("StatusCode"),
            "version": reply.get("ExecutedVersion"), "wall_ms": round(wall_ms, 2)}
    try:
        response = decode_reply(raw)
        if reply.get("FunctionError"):
            raise FunctionError(f"the function failed: {reply['FunctionError']}", kind="FunctionError")
        if not isinstance(response, dict) or "results" not in response:
            raise FunctionError(f"the function answered without a result: {raw[:120]!r}", kind="BadResponse")
    except FunctionError as exc:
        exc.logs = log_tail
        exc.hint = ("The tail of the function's log is above." if log_tail else
                    "See the function's log (CloudWatch Logs, /aws/lambda/<function>).")
        raise
    return {"response": response, "invocation": info, "log_tail": log_tail}

