"""The Lambda ``Invoke`` API as the warm stack serves it, so any Lambda client (boto3, the AWS CLI, an SDK)
can call the local function: ``POST /2015-03-31/functions/{FunctionName}/invocations``.

What a client sees follows AWS's model of the operation (botocore's ``lambda`` service model, rest-json):
status 200 / 202 / 204 for RequestResponse / Event / DryRun; ``X-Amz-Function-Error: Unhandled`` with the
error object as the body when the function failed; ``X-Amz-Log-Result`` (base64 of the last 4 KB of the
invocation's log) for ``X-Amz-Log-Type: Tail``; ``X-Amz-Executed-Version``. Errors are JSON bodies
``{"Type": "User"|"Service", "Message"|"message": ...}`` with the error type in ``X-Amzn-ErrorType``,
which is where botocore reads the code from, so boto3 raises ``ResourceNotFoundException``,
``InvalidRequestContentException``, ``RequestTooLargeException``, ``TooManyRequestsException`` or
``ServiceException``.

Whatever arrives (a garbage body, bad headers, a wrong path, a lying or huge Content-Length, a client that
goes away) gets an answer or a closed connection, never a dead server or a hung thread: bodies are read
with a per-read timeout, at most the limit (plus a bounded drain), and every handler error is caught.

Also here: the opt-in fault switch (``/rcyc/faults``) that makes the stack answer the next N invokes, or
a fraction of them, with 429 or a 5xx, so clients' retries can be tested against a real server.
"""

from __future__ import annotations

import base64
import json
import queue
import random
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from rcyc_core.errors import FunctionError

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
EMULATOR_ALIAS = "function"  # the name the emulator itself answers to
EXECUTED_VERSION = "$LATEST"  # a local stack has one version
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # 6291456 bytes: Lambda's RequestResponse payload quota
EVENT_PAYLOAD_LIMIT = 256 * 1024  # Lambda's Event (asynchronous) payload quota
DRAIN_LIMIT = 8 * 1024 * 1024  # an over-limit body up to this size is read (and dropped) before the 413
LOG_TAIL_BYTES = 4096
FAULTS_PATH = "/rcyc/faults"
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


class FaultSwitch:
    """Answers the next ``next`` invokes, then a ``fraction`` of them, with ``status`` (429, 500, 502, 503).
    Off until configured; ``{"next": 0, "fraction": 0}`` switches it off."""

    def __init__(self):
        self._lock = threading.Lock()
        self.remaining, self.fraction, self.status, self.injected = 0, 0.0, 429, 0
        self._random = random.Random()

    def configure(self, spec: object) -> dict:
        if not isinstance(spec, dict) or set(spec) - {"next", "status", "fraction", "seed"}:
            raise invalid_content('a fault spec is {"next": N, "status": 429|500|502|503, "fraction": 0.0-1.0}')
        remaining, fraction, status = spec.get("next", 0), spec.get("fraction", 0.0), spec.get("status", 429)
        if type(remaining) is not int or not 0 <= remaining <= 1_000_000:
            raise invalid_content("next must be an integer from 0 to 1000000")
        if type(fraction) not in (int, float) or not 0.0 <= fraction <= 1.0:
            raise invalid_content("fraction must be a number from 0.0 to 1.0")
        if status not in FAULT_STATUSES or type(status) is not int:
            raise invalid_content(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}")
        with self._lock:
            self.remaining, self.fraction, self.status = remaining, float(fraction), status
            if "seed" in spec:
                self._random.seed(spec["seed"])
        return self.to_dict()

    def take(self) -> int | None:
        """The status to answer this invoke with, or None to serve it."""
        with self._lock:
            if self.remaining > 0:
                self.remaining -= 1
            elif not (self.fraction and self._random.random() < self.fraction):
                return None
            self.injected += 1
            return self.status

    def to_dict(self) -> dict:
        with self._lock:
            return {"next": self.remaining, "status": self.status, "fraction": self.fraction, "injected": self.injected}


class Admission:
    """At most ``instances + waiting`` invocations in the stack at once (running or waiting for an idle
    instance); a synchronous invoke beyond that is refused at once with 429, as Lambda throttles."""

    def __init__(self, instances: int, waiting: int):
        self.capacity = instances + waiting
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self.in_use = 0

    def _count(self, step: int) -> None:
        with self._lock:
            self.in_use += step

    def try_enter(self) -> bool:
        if self._slots.acquire(blocking=False):
            self._count(1)
            return True
        return False

    def enter(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._slots.acquire(timeout=0.2):
                self._count(1)
                return True
        return False

    def leave(self) -> None:
        self._count(-1)
        self._slots.release()


class EventQueue:
    """Asynchronous (``Event``) invocations: a bounded queue run on the pool by a few worker threads."""

    def __init__(self, invoke: Callable[[object], object], admission: Admission, size: int, workers: int):
        self._invoke, self._admission = invoke, admission
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.counts = {"accepted": 0, "succeeded": 0, "failed": 0}
        self.size = size
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"event-{i}") for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, event: object) -> bool:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            return False
        self._count("accepted")
        return True

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self._admission.enter(self._stop):
                return
            try:
                self._invoke(event)
                self._count("succeeded")
            except Exception as exc:  # an async invocation's failure is counted and logged, as Lambda would
                self._count("failed")
                print(f"event invocation failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            finally:
                self._admission.leave()

    def to_dict(self) -> dict:
        with self._lock:
            return {**self.counts, "queued": self._queue.qsize(), "queue_size": self.size}

    def stop(self) -> None:
        self._stop.set()


class StackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        # A handler bug must not end the server; one line in the stack log, no traceback spew.
        print(f"request from {client_address[0]} failed: {sys.exc_info()[0].__name__}: {sys.exc_info()[1]}", flush=True)


class Api:
    """What the handler needs from the stack."""

    def __init__(self, invoke: Callable[[object], tuple], status: Callable[[], dict], names: tuple[str, ...],
                 admission: Admission, events: EventQueue, faults: FaultSwitch, read_timeout: float):
        self.invoke, self.status, self.names = invoke, status, names
        self.admission, self.events, self.faults, self.read_timeout = admission, events, faults, read_timeout


def make_handler(api: Api, status_path: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects; every answer has a Content-Length
        server_version = "rcyc-local"
        sys_version = ""
        timeout = api.read_timeout  # per socket read: a silent client is answered (or dropped), never waited on
        _linger = False

        def log_message(self, *args):  # quiet: the stack log is for the stack's own events
            pass

        def setup(self):
            super().setup()
            # Headers and body go out as two writes: without this, Nagle's algorithm and the client's delayed
            # ACK add ~40 ms to every keep-alive answer (measured with boto3: 52-80 ms p50 instead of ~10).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one_request(self):
            try:
                super().handle_one_request()
            except (OSError, ValueError):  # the client went away mid-answer, or sent something http.server chokes on
                self.close_connection = True

        def finish(self):
            try:
                if not self.wfile.closed:
                    self.wfile.flush()
                if self._linger:
                    self._drain_after_reply()
            except OSError:
                pass
            try:
                super().finish()
            except OSError:
                pass

        def _drain_after_reply(self, seconds: float = 2.0, limit: int = DRAIN_LIMIT) -> None:
            # The answer went out before the body was read: tell the client we are done writing, then read
            # what it still sends for a moment, so closing does not reset the connection under its answer.
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            deadline, read = time.monotonic() + seconds, 0
            while time.monotonic() < deadline and read < limit:
                try:
                    chunk = self.connection.recv(65536)
                except (TimeoutError, socket.timeout):
                    continue
                if not chunk:
                    break
                read += len(chunk)

        # -- answers ------------------------------------------------------------------------------------
        def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("X-Amzn-RequestId", str(uuid.uuid4()))
            if body or status not in (202, 204):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _reply_error(self, error: ApiError) -> None:
            headers = {"X-Amzn-ErrorType": error.error_type} if error.error_type else {}
            self._reply(error.status, error.body(), headers)

        def _json(self, body: object) -> None:
            self._reply(200, json.dumps(body).encode())

        def send_error(self, code, message=None, explain=None):
            # http.server's own refusals (bad request line, headers too long, unknown method): JSON too, with
            # a status line even for a request too broken to have a version.
            self.close_connection = True
            self._linger = True
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
            kinds = {404: "UnknownOperationException", 405: "UnknownOperationException", 501: "UnknownOperationException"}
            error_type = kinds.get(code, "InvalidRequestContentException" if code < 500 else "ServiceException")
            text = message or self.responses.get(code, ("Error",))[0]
            try:
                self._reply_error(ApiError(code, error_type, text, fault="Service" if error_type == "ServiceException" else "User"))
            except OSError:
                pass

        # -- the request body -----------------------------------------------------------------------------
        def _read_body(self, limit: int) -> bytes:
            """The whole body, at most ``limit`` bytes, or an ApiError (after which the connection closes)."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self._give_up()
                raise invalid_content("chunked request bodies are not supported: send Content-Length")
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                return b""
            if len(set(v.strip() for v in lengths)) != 1 or not DIGITS_RE.fullmatch(lengths[0].strip()):
                self._give_up()
                raise invalid_content("Content-Length is not a number of bytes")
            digits = lengths[0].strip().lstrip("0") or "0"
            length = int(digits) if len(digits) <= 15 else DRAIN_LIMIT + 1  # a claim of petabytes is simply too large
            if length > limit:
                if length <= DRAIN_LIMIT:
                    self._read_exactly(length, drop=True)
                    self.close_connection = True
                else:
                    self._give_up()
                raise too_large(length, limit)
            return self._read_exactly(length)

        def _read_exactly(self, length: int, drop: bool = False) -> bytes:
            chunks, got = [], 0
            try:
                while got < length:
                    chunk = self.rfile.read1(min(65536, length - got))
                    if not chunk:
                        break
                    got += len(chunk)
                    if not drop:
                        chunks.append(chunk)
            except (TimeoutError, socket.timeout, OSError):
                pass
            if got < length:
                self.close_connection = True
                raise invalid_content(f"the body ended after {got} of the {length} bytes its Content-Length announced")
            return b"".join(chunks)

        def _give_up(self) -> None:
            self.close_connection = True
            self._linger = True

        # -- routes -------------------------------------------------------------------------------------
        def do_GET(self):
            path = urlsplit(self.path).path
            if path == status_path:
                self._json(api.status())
            elif path == FAULTS_PATH:
                self._json(api.faults.to_dict())
            else:
                self._no_route()

        do_HEAD = do_GET

        def _no_route(self) -> None:
            self._give_up()
            self._reply_error(ApiError(404, "UnknownOperationException", f"no operation at {self.command} {self.path[:200]}"))

        def do_POST(self):
            try:
                self._post()
            except ApiError as error:
                self._reply_error(error)
            except OSError:
                self.close_connection = True
            except Exception as exc:  # a bug: the client still gets an answer, the server keeps serving
                self.close_connection = True
                self._reply_error(service_error(f"{type(exc).__name__}: {str(exc)[:200]}"))

        def _post(self):
            if urlsplit(self.path).path == FAULTS_PATH:
                body = self._read_body(64 * 1024)
                self._json(api.faults.configure(_parse_json(body)))
                return
            target = invoke_target(self.path)
            if target is None:
                self._no_route()
                return
            invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse").strip() or "RequestResponse"
            limit = EVENT_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
            body = self._read_body(limit)
            fault = api.faults.take()
            if fault is not None:
                raise fault_error(fault)
            resolve_function(target[0], target[1], api.names)
            if invocation_type not in INVOCATION_TYPES:
                raise invalid_parameter(f"X-Amz-Invocation-Type must be one of {', '.join(INVOCATION_TYPES)}")
            event = _parse_json(body) if body.strip() else {}
            if invocation_type == "DryRun":
                self._reply(204, headers={"X-Amz-Executed-Version": EXECUTED_VERSION})
            elif invocation_type == "Event":
                if not api.events.submit(event):
                    raise throttled("The event queue is full.", reason="EventQueueFull")
                self._reply(202, headers={"X-Amz-Executed-Version": EXECUTED_VERSION})
            else:
                self._invoke(event)

        def _invoke(self, event: object) -> None:
            if not api.admission.try_enter():
                raise throttled("Rate Exceeded. Every instance is busy and the wait queue is full.")
            try:
                answer, instance = api.invoke(event)
            except FunctionError as exc:
                if exc.kind == "EmulatorError":
                    raise service_error(f"the function's sandbox failed: {exc.message}") from None
                headers = {"X-Amz-Function-Error": "Unhandled", **self._log_headers(getattr(exc, "logs", []))}
                self._reply(200, json.dumps(error_object(exc)).encode(), {"X-Amz-Executed-Version": EXECUTED_VERSION, **headers})
                return
            finally:
                api.admission.leave()
            headers = {"X-Amz-Executed-Version": EXECUTED_VERSION, **self._log_headers(answer.logs)}
            if self.headers.get("X-Rcyc-Report"):  # rcyc's own client: the REPORT figures and the instance
                headers["X-Rcyc-Report"] = json.dumps({"report": answer.report.to_dict_raw(), "instance": instance.index})
            self._reply(200, json.dumps(answer.response).encode(), headers)

        def _log_headers(self, lines: list[str]) -> dict:
            if self.headers.get("X-Amz-Log-Type", "").strip() == "Tail":
                return {"X-Amz-Log-Result": log_tail(lines)}
            return {}

        def _refuse(self):
            self._give_up()
            self._reply_error(ApiError(405, "UnknownOperationException", f"{self.command} is not an operation here"))

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    return Handler


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid_content(f"Could not parse request body into json: {type(exc).__name__}: {str(exc)[:120]}") from None
