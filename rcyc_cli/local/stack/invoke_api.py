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

import json
import socket
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

from rcyc_core.errors import FunctionError

from . import s3_route
from .admission import Admission, EventQueue, FaultSwitch, RunAdmission
from .errors import (ApiError, error_object, fault_error, invalid_content, invalid_parameter, service_error, throttled,
                     too_large)
from .protocol import (DIGITS_RE, DRAIN_LIMIT, EVENT_PAYLOAD_LIMIT, EXECUTED_VERSION, FAULTS_PATH, INVOCATION_TYPES,
                       RESULTS_PATH, RUN_PAYLOAD_LIMIT, RUNS_AT_ONCE, RUNS_PATH, S3_LIST_PATH, S3_OBJECT_PATH, STATUS_PATH,
                       SYNC_PAYLOAD_LIMIT, invoke_target, log_tail, resolve_function)


class Api:
    """What the handler needs from the stack."""

    def __init__(self, invoke: Callable[[object], tuple], status: Callable[[], dict], names: tuple[str, ...],
                 admission: Admission, events: EventQueue, faults: FaultSwitch, read_timeout: float,
                 run: Callable[[dict], dict] | None = None, store: Callable[[object], dict] | None = None,
                 runs: RunAdmission | None = None, s3=None):
        self.invoke, self.status, self.names = invoke, status, names
        self.admission, self.events, self.faults, self.read_timeout = admission, events, faults, read_timeout
        self.run = run  # a whole invoke-local run: its images as bytes (rcyc's own route, RUNS_PATH)
        self.store = store  # classify --local's result objects (rcyc's own route, RESULTS_PATH)
        self.s3 = s3  # the stack's EmbeddedS3, which rcyc's own reads come from (S3_LIST_PATH, S3_OBJECT_PATH)
        self.runs = runs or RunAdmission(RUNS_AT_ONCE, RUN_PAYLOAD_LIMIT)
        self.last_request = time.monotonic()  # for the idle stop of a stack invoke-local left behind


class StackHTTPServer(ThreadingHTTPServer):
    """The Invoke API on one address, answering for ``api``."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Api):
        self.api = api
        super().__init__(address, InvokeHandler)

    def handle_error(self, request, client_address) -> None:
        # A handler bug must not end the server; one line in the stack log, no traceback spew.
        print(f"request from {client_address[0]} failed: {sys.exc_info()[0].__name__}: {sys.exc_info()[1]}", flush=True)


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing for a JSON API that must survive any client: keep-alive answers with a
    Content-Length, bounded body reads with a per-read timeout, JSON even for http.server's own refusals."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects; every answer has a Content-Length
    server_version = "rcyc-local"
    sys_version = ""
    _linger = False

    def log_message(self, *args):  # quiet: the stack log is for the stack's own events
        pass

    def setup(self):
        self.timeout = self.server.api.read_timeout  # per socket read: a silent client is answered (or dropped)
        super().setup()
        self._answered = False  # one answer per request: bytes after an answered request that are no
        # request (the rest of a body shorter than its Content-Length claimed) close the connection
        # Headers and body go out as two writes: without this, Nagle's algorithm and the client's delayed
        # ACK add ~40 ms to every keep-alive answer (measured with boto3: 52-80 ms p50 instead of ~10).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        self.server.api.last_request = time.monotonic()
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

    # -- answers --------------------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self._answered = True
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
        # a status line even for a request too broken to have a version. Not after an answer on this
        # connection: what follows an answered request and is no request gets the connection closed,
        # never a second reply the client did not ask for (it would read it as part of the first).
        self.close_connection = True
        self._linger = True
        if self._answered:
            return
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        kinds = {404: "UnknownOperationException", 405: "UnknownOperationException", 501: "UnknownOperationException"}
        error_type = kinds.get(code, "InvalidRequestContentException" if code < 500 else "ServiceException")
        text = message or self.responses.get(code, ("Error",))[0]
        try:
            self._reply_error(ApiError(code, error_type, text, fault="Service" if error_type == "ServiceException" else "User"))
        except OSError:
            pass

    # -- the request body -------------------------------------------------------------------------------------
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

    def _no_route(self) -> None:
        self._give_up()
        self._reply_error(ApiError(404, "UnknownOperationException", f"no operation at {self.command} {self.path[:200]}"))

    def _refuse(self):
        self._give_up()
        self._reply_error(ApiError(405, "UnknownOperationException", f"{self.command} is not an operation here"))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class InvokeHandler(JsonHandler):
    """The routes: Invoke, the stack's status, the fault switch, and a whole invoke-local run."""

    server: StackHTTPServer

    def do_GET(self):
        api, path = self.server.api, urlsplit(self.path).path
        if path == STATUS_PATH:
            self._json(api.status())
        elif path == FAULTS_PATH:
            self._json(api.faults.to_dict())
        elif path in (S3_LIST_PATH, S3_OBJECT_PATH) and api.s3 is not None:
            try:
                self._reply(*s3_route.answer(path, urlsplit(self.path).query, api.s3))
            except Exception as exc:  # a bug: the client still gets an answer, the server keeps serving
                self.close_connection = True
                self._reply(*s3_route.error(500, "InternalError", f"{type(exc).__name__}: {str(exc)[:200]}"))
        else:
            self._no_route()

    do_HEAD = do_GET

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
        api, path = self.server.api, urlsplit(self.path).path
        if path == FAULTS_PATH:
            self._json(api.faults.configure(_parse_json(self._read_body(64 * 1024))))
        elif path == RUNS_PATH and api.run is not None:
            self._run(api)
        elif path == RESULTS_PATH and api.store is not None:
            self._json(api.store(_parse_json(self._read_body(SYNC_PAYLOAD_LIMIT))))
        elif (target := invoke_target(self.path)) is None:
            self._no_route()
        else:
            self._post_invoke(*target)

    def _run(self, api: Api) -> None:
        # Admitted by its declared size before a byte is read (a body that lies about it is refused by
        # _read_body); beyond the runs or bytes in flight, 429 at once and the connection closes.
        declared = (self.headers.get("Content-Length") or "").strip()
        size = int(declared) if DIGITS_RE.fullmatch(declared) and len(declared) <= 15 else 0
        if size > RUN_PAYLOAD_LIMIT:
            self._read_body(RUN_PAYLOAD_LIMIT)  # raises the 413
        if not api.runs.try_enter(size):
            self._give_up()
            raise throttled("Rate Exceeded. The stack holds as many runs (or bytes of runs) as it takes; "
                            "retry when one ends.", reason="RunLimitExceeded")
        try:
            self._json(api.run(_parse_json(self._read_body(RUN_PAYLOAD_LIMIT))))
        finally:
            api.runs.leave(size)
            api.last_request = time.monotonic()  # a long run counts as activity until it ends

    def _post_invoke(self, function_name: str, query: dict) -> None:
        api = self.server.api
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse").strip() or "RequestResponse"
        body = self._read_body(EVENT_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT)
        fault = api.faults.take()
        if fault is not None:
            raise fault_error(fault)
        resolve_function(function_name, query, api.names)
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
        api = self.server.api
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


def _parse_json(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid_content(f"Could not parse request body into json: {type(exc).__name__}: {str(exc)[:120]}") from None

