"""Where ``rcyc classify`` sends its events: AWS Lambda through boto3, or the local stack through the same
Lambda Invoke API with the stack's own loopback client (``RemoteStack.invoke``). boto3's import and a Lambda
client cost about 0.2 s of CPU before the first event could go out, on the two cores the instances need: most
of what a 400-image run spent beyond ``invoke-local`` on the same images. The stack's client names a
refusal by the error type boto3 would raise, so both targets share one retry policy: one attempt per call, and
``invoke`` tries an event at most ``ATTEMPTS`` times in all (throttling and transient faults, with backoff)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from rcyc_core.errors import FunctionError, InputError

from ..cloud.aws import translate
from ..defaults import DEFAULT_ARCHITECTURE
from ..invocation import Report, decode_reply, log_tail_lines, parse_report

# Whole-invocation failures worth another try: throttling left after boto3's own retries, Lambda's or the
# emulator's transient faults, a timeout.
TRANSIENT = {"TooManyRequestsException", "ServiceException", "EC2ThrottledException", "ResourceNotReadyException",
             "Unreachable", "EmulatorError", "Timeout", "500", "502", "503", "504", "ThrottlingException",
             "ConnectionFailed", "429"}


@dataclass
class Target:
    kind: str  # "aws" | "local"
    lam: object  # a boto3 Lambda client (None: the local stack's own client, ``stack``)
    function: str
    endpoint: str
    memory_mb: int
    architecture: str
    timeout: int
    concurrency_limit: int | None = None  # reserved (or the account's unreserved) concurrency
    model_bucket: str | None = None  # the bucket whose pointer names the function's model
    # Stores an event's result objects [(key, body, metadata)] in one request, returning their ETags (the
    # local stack); None: one S3 PUT each.
    store: Callable[[str, list[tuple[str, bytes, dict]]], list[str]] | None = None
    info: dict = field(default_factory=dict)
    stack: object = None  # the local stack (a RemoteStack) whose Invoke API takes the events, without boto3


@dataclass
class Answer:
    response: dict
    report: Report
    wall_ms: float
    attempts: int


ATTEMPTS = 3  # invocations of one event, in all


def lambda_client(endpoint_url: str | None, region: str | None, timeout: int, pool: int, session=None, credentials=None):
    import boto3

    from ..cloud.aws import client_config

    # botocore's own retries off: ``invoke`` is the one place an event is tried again (not tries x retries).
    config = client_config(read=timeout + 30, attempts=1, max_pool_connections=max(10, pool))
    return (session or boto3).client("lambda", endpoint_url=endpoint_url, region_name=region, config=config,
                                     **(credentials or {}))


def invoke(target: Target, event: dict, attempts: int = ATTEMPTS, backoff: float = 1.0) -> Answer:
    """One event, synchronously, with its log tail; FunctionError after ``attempts`` transient failures."""
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            return Answer(*_invoke_once(target, event), wall_ms=(time.perf_counter() - started) * 1000, attempts=attempt)
        except FunctionError as exc:
            if exc.kind not in TRANSIENT or attempt == attempts:
                raise
        time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _invoke_once(target: Target, event: dict) -> tuple[dict, Report]:
    if target.stack is not None:
        try:
            answer = target.stack.invoke(event, attempts=1, function=target.function)  # ``invoke`` retries
        except InputError as exc:  # an event Lambda would refuse, as boto3's 413 would be: this event's failure
            raise FunctionError(exc.message, kind=exc.kind, hint=exc.hint) from None
        response, report, failed = answer.response, answer.report, False
    else:
        try:
            reply = target.lam.invoke(FunctionName=target.function, InvocationType="RequestResponse", LogType="Tail",
                                      Payload=json.dumps(event).encode())
        except Exception as exc:
            error = translate(f"invoke {target.function}", exc)
            raise FunctionError(error.message, kind=error.kind, hint=error.hint) from None
        raw = reply["Payload"].read().decode("utf-8", "replace")
        response, report, failed = decode_reply(raw), parse_report(log_tail_lines(reply.get("LogResult"))), bool(reply.get("FunctionError"))
    if failed or not isinstance(response, dict) or "results" not in response or not _a_model(response.get("model")):
        raise FunctionError(f"the function answered without a result: {json.dumps(response)[:120]!r}", kind="BadResponse")
    return response, report


def _a_model(model: object) -> bool:
    """Whether an answer's model is one the function names (None, or its name, version and sha256): the run
    keys its summary by the sha256 and writes the version beside every result."""
    return model is None or (isinstance(model, dict) and all(isinstance(model.get(k), str) for k in ("name", "version", "sha256")))


def aws_target(function: str, region: str | None, concurrency: int) -> tuple[Target, object]:
    """The deployed function (its memory, architecture, model bucket and concurrency limit) and an S3 client."""
    from ..cloud.aws import Aws, aws_call, get_or_none

    aws = Aws(region)
    config = aws_call(f"read the function {function}", aws.client("lambda").get_function_configuration, FunctionName=function)
    lam = lambda_client(None, aws.region, config.get("Timeout", 900), concurrency, session=aws.session)
    reserved = (get_or_none(f"read the concurrency of {function}", aws.client("lambda").get_function_concurrency,
                            ("ResourceNotFoundException",), FunctionName=function) or {}).get("ReservedConcurrentExecutions")
    if reserved is None:
        try:
            account = aws.client("lambda").get_account_settings()["AccountLimit"]
            reserved = account.get("UnreservedConcurrentExecutions") or account.get("ConcurrentExecutions")
        except Exception:  # not allowed to read it, or not supported by the endpoint: no cap beyond --concurrency
            reserved = None
    env = (config.get("Environment") or {}).get("Variables", {})
    target = Target("aws", lam, function, f"aws ({aws.region})", config.get("MemorySize", 128),
                    (config.get("Architectures") or [DEFAULT_ARCHITECTURE])[0], config.get("Timeout", 900), reserved,
                    env.get("RCYC_MODEL_BUCKET"))
    return target, aws.client("s3")


def local_target(function: str, concurrency: int, report) -> tuple[Target, object]:
    """The warm local stack (started if none runs) through its Lambda Invoke API, and its S3."""
    from ..local.emulator import rie
    from ..local.stack import client as stack

    running, s3 = stack.find_or_up(report)
    config = running.state.config
    target = Target("local", None, function, running.endpoint_url, config.function.memory, rie.arch(),
                    config.function.timeout, config.instances, config.bucket, store=stack_store(running.endpoint_url),
                    stack=running)
    return target, s3


def in_background(call: Callable, *args) -> Future:
    """``call(*args)`` in a daemon thread (a Ctrl-C or a failure meanwhile does not wait for it); its result,
    or its exception, from the future."""
    future: Future = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(call(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="classify-background").start()
    return future


class NoStoreRoute(Exception):
    """The stack predates the results route, or leaves this bucket's writes to the S3 API: write through S3."""


class NotReplaced(Exception):
    """The objects are stored, but the stack did not say it removed the files they replace (one from before
    ``replaces``): those are S3's to remove."""


def stack_store(endpoint_url: str):
    """The local stack's results route: an event's result objects in one request, stored in its S3 directly."""
    from rcyc_core.errors import AwsError

    from ..files import unanswered
    from ..local.stack.protocol import RESULTS_PATH

    def store(bucket: str, items: list[tuple[str, bytes, dict]], replaces: list[str] = ()) -> list[str]:
        """``replaces``: resume index files the stack removes once ``items`` are stored (NotReplaced: it did not)."""
        import http.client  # (here: a run that stores nothing never imports http.client)
        import urllib.error
        import urllib.request

        document = {"bucket": bucket, "objects": [{"key": key, "body": data.decode(), "metadata": metadata}
                                                  for key, data, metadata in items]}
        if replaces:
            document["replaces"] = list(replaces)
        body = json.dumps(document).encode()
        request = urllib.request.Request(endpoint_url + RESULTS_PATH, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NoStoreRoute() from None
            raise AwsError(f"the local stack refused the results ({exc.code}: {_said(exc)})", kind="S3Unreachable") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, RecursionError,
                http.client.HTTPException) as exc:
            raise AwsError(f"the local stack did not store the results: {unanswered(exc)}",
                           kind="S3Unreachable", hint="rcyc local status") from None
        if isinstance(answer, dict) and answer.get("through_s3"):  # a bucket with a policy, say: S3 writes it
            raise NoStoreRoute()
        etags = _stored(answer, len(items))
        if replaces and answer.get("replaced") != list(replaces):
            raise NotReplaced()
        return etags

    return store


def _stored(answer: object, count: int) -> list[str]:
    """The etags of the results route's answer, or its error; an answer of another shape (whatever listens
    on the stack's port) is the stack not storing them, not a KeyError or TypeError."""
    from rcyc_core.errors import AwsError

    from ..files import shown

    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        kind = error.get("kind")
        raise AwsError(f"the local stack did not store the results: {shown(error.get('message'))[:200]}",
                       kind=kind if isinstance(kind, str) and kind.isprintable() and 0 < len(kind) <= 100 else "S3Error")
    etags = answer.get("etags") if isinstance(answer, dict) else None
    if error is not None or not (isinstance(etags, list) and len(etags) == count and all(isinstance(e, str) for e in etags)):
        raise AwsError("the local stack's answer to the results is not one it gives", kind="S3Unreachable",
                       hint="rcyc local status")
    return etags


def _said(refusal) -> str:
    """The message of a refusal from the stack (its error answers are JSON with a message)."""
    try:
        answer = json.loads(refusal.read(64 * 1024))
        return str(answer.get("message") or answer.get("Message") or answer)[:200]
    except Exception:  # no body, or not JSON: the status says enough
        return "no message"
