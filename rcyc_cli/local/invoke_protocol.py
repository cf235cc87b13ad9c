"""The Lambda Invoke API's rules as the stack applies them: which names and ARNs are this function,
the payload limits, the error answers (status, ``X-Amzn-ErrorType``, JSON body, as botocore parses
them), the log tail, and the function's error object."""


from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from rcyc_core.errors import FunctionError

from ..defaults import LAMBDA_MAX_PAYLOAD
from ..invocation import LOG_TAIL_BYTES

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
EMULATOR_ALIAS = "function"  # the name the emulator itself answers to
EXECUTED_VERSION = "$LATEST"  # a local stack has one version
SYNC_PAYLOAD_LIMIT = LAMBDA_MAX_PAYLOAD  # 6291456 bytes: Lambda's RequestResponse payload quota
EVENT_PAYLOAD_LIMIT = 256 * 1024  # Lambda's Event (asynchronous) payload quota
DRAIN_LIMIT = 8 * 1024 * 1024  # an over-limit body up to this size is read (and dropped) before the 413
FAULTS_PATH = "/rcyc/faults"
RUNS_PATH = "/rcyc/runs"  # rcyc's own route: a whole invoke-local run, its images as bytes (stack_server.warm_run)
RUN_PAYLOAD_LIMIT = 256 * 1024 * 1024  # a run's images, base64-encoded, in one request; also the bytes of all
RUNS_AT_ONCE = 8  # the runs in a stack at once (admission.RunAdmission): beyond either bound, 429
FAULT_STATUSES = (429, 500, 502, 503)
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:(?P<rest>.+)")
PARTIAL_ARN_RE = re.compile(r"\d{12}:function:(?P<rest>.+)")
DIGITS_RE = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit would take "²")
QUALIFIER_RE = re.compile(r"\$LATEST|[A-Za-z0-9_-]{1,128}")


# Which member carries the message, per error shape in AWS's model (botocore reads either).
_MESSAGE_KEY = {"ResourceNotFoundException": "Message", "ServiceException": "Message"}


class ApiError(Exception):
    """An error answer: status, error type (``X-Amzn-ErrorType``), message, and who is at fault."""

    def __init__(self, status: int, error_type: str | None, message: str, fault: str = "User",
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message, self.fault = status, error_type, message, fault
        self.extra = extra or {}

    def body(self) -> bytes:
        if self.error_type is None:  # a gateway-style failure (the fault switch's 502/503): no modeled type
            return json.dumps({"message": self.message}).encode()
        key = _MESSAGE_KEY.get(self.error_type, "message")
        return json.dumps({"Type": self.fault, key: self.message, **self.extra}).encode()


def not_found(what: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"Function not found: {what}")


def invalid_content(message: str) -> ApiError:
    return ApiError(400, "InvalidRequestContentException", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValueException", message)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "RequestTooLargeException",
                    f"Request must be smaller than {limit} bytes for the InvokeFunction operation (got {size})")


def throttled(message: str = "Rate Exceeded.", reason: str = "ConcurrentInvocationLimitExceeded") -> ApiError:
    return ApiError(429, "TooManyRequestsException", message, extra={"Reason": reason})


def service_error(message: str) -> ApiError:
    return ApiError(500, "ServiceException", message, fault="Service")


def fault_error(status: int) -> ApiError:
    note = "injected by the rcyc fault switch"
    if status == 429:
        return throttled(f"Rate Exceeded. ({note})", reason="CallerRateLimitExceeded")
    if status == 500:
        return service_error(f"An internal error occurred ({note})")
    return ApiError(status, None, f"{'Bad Gateway' if status == 502 else 'Service Unavailable'} ({note})", fault="Service")


def invoke_target(raw_path: str) -> tuple[str, dict[str, list[str]]] | None:
    """The FunctionName (decoded) and query of an Invoke request's path; None if it is not an Invoke path."""
    parts = urlsplit(raw_path)
    path = parts.path
    if not (path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX)):
        return None
    name = path[len(INVOKE_PREFIX):-len(INVOKE_SUFFIX)]
    if not name or "/" in name:
        return None
    return unquote(name, errors="replace"), parse_qs(parts.query, keep_blank_values=True, errors="replace")


def resolve_function(function_name: str, query: dict[str, list[str]], names: tuple[str, ...]) -> str:
    """Check a FunctionName (name, ``name:qualifier``, full or partial ARN) and the ``Qualifier`` parameter
    against the names this stack answers to; return the qualifier. Raise 404 for any other function, and
    for any version or alias but ``$LATEST`` (a local stack has no other)."""
    rest = function_name
    for pattern in (ARN_RE, PARTIAL_ARN_RE):
        if (match := pattern.fullmatch(function_name)):
            rest = match["rest"]
            break
    name, _, qualifier = rest.partition(":")
    if not NAME_RE.fullmatch(name) or name not in names:
        raise not_found(function_name)
    given = query.get("Qualifier", [])
    if len(given) > 1:
        raise invalid_parameter("Qualifier was given more than once")
    if given and qualifier and given[0] != qualifier:
        raise invalid_parameter("The derived qualifier from the function name does not match the specified qualifier.")
    qualifier = qualifier or (given[0] if given else EXECUTED_VERSION)
    if not QUALIFIER_RE.fullmatch(qualifier):
        raise invalid_parameter(f"Qualifier {qualifier!r} is not a valid version or alias")
    if qualifier != EXECUTED_VERSION:
        raise not_found(f"{name}:{qualifier} (a local stack only has {EXECUTED_VERSION})")
    return qualifier


def log_tail(lines: list[str]) -> str:
    """``X-Amz-Log-Result``: base64 of the last 4 KB of the invocation's log."""
    data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
    return base64.b64encode(data[-LOG_TAIL_BYTES:]).decode("ascii")


def error_object(exc: FunctionError) -> dict:
    """The function's error object as Lambda returns it, rebuilt from the FunctionError the sandbox raised.
    A timeout is Lambda's ``Sandbox.Timedout`` with the emulator's own "Task timed out after ..." message."""
    message = exc.message
    if exc.kind == "Timeout" and (match := re.search(r"Task timed out[^)]*", message)):
        return {"errorType": "Sandbox.Timedout", "errorMessage": match[0]}
    prefix = f"the function failed: {exc.kind}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    return {"errorType": exc.kind, "errorMessage": message}

