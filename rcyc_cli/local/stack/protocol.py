"""The Lambda Invoke API's rules as the stack applies them: its paths, which names and ARNs are this
function, the payload limits and the log tail. The error answers are in ``errors``."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, unquote, urlsplit

from ...defaults import LAMBDA_MAX_PAYLOAD
from ...invocation import LOG_TAIL_BYTES
from .errors import invalid_parameter, not_found

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
EMULATOR_ALIAS = "function"  # the name the emulator itself answers to
EXECUTED_VERSION = "$LATEST"  # a local stack has one version
SYNC_PAYLOAD_LIMIT = LAMBDA_MAX_PAYLOAD  # 6291456 bytes: Lambda's RequestResponse payload quota
EVENT_PAYLOAD_LIMIT = 256 * 1024  # Lambda's Event (asynchronous) payload quota
DRAIN_LIMIT = 8 * 1024 * 1024  # an over-limit body up to this size is read (and dropped) before the 413
STATUS_PATH = "/rcyc/status"  # the stack's own status (GET)
FAULTS_PATH = "/rcyc/faults"
RUNS_PATH = "/rcyc/runs"  # rcyc's own route: a whole invoke-local run, its images as bytes (server.warm_run)
RUN_PAYLOAD_LIMIT = 256 * 1024 * 1024  # a run's images, base64-encoded, in one request; also the bytes of all
RUNS_AT_ONCE = 8  # the runs in a stack at once (admission.RunAdmission): beyond either bound, 429
RESULTS_PATH = "/rcyc/results"  # rcyc's own route: classify --local's result objects, stored in one request an event
S3_LIST_PATH = "/rcyc/s3/list"  # rcyc's own reads of the stack's S3 (GET): ?bucket=&prefix=&max-keys=&continuation-token=
S3_OBJECT_PATH = "/rcyc/s3/object"  # ?bucket=&key=: the object's bytes, its ETag in the ETag header
S3_READ_HEADER = "X-Rcyc-S3-Read"  # on every answer of the two read paths: what else answers there is not the stack
FAULT_STATUSES = (429, 500, 502, 503)
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:(?P<rest>.+)")
PARTIAL_ARN_RE = re.compile(r"\d{12}:function:(?P<rest>.+)")
DIGITS_RE = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit would take "²")
QUALIFIER_RE = re.compile(r"\$LATEST|[A-Za-z0-9_-]{1,128}")


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
