"""A fault-injecting AWS endpoint on 127.0.0.1: requests go on to an upstream (moto's server) unless a rule
matches, and then get the failure of one class, shaped as the service would send it (S3's XML, Lambda's
JSON, IAM/STS query XML), or an HTML page, a connection reset, a response that never comes in time.

Every request is counted by (service, operation) so a test can assert how many attempts a command made."""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FAULTS = ("expired", "403", "404-html", "429", "500-html", "reset", "slow")
HTML_500 = b"<html>\n<head><title>500 Internal Server Error</title></head>\n<body>\n<h1>Internal Server Error</h1>\n</body>\n</html>\n"
HTML_404 = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>\n<p>The requested URL was not found.</p></body></html>\n"
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
S3_ERRORS = {"expired": (400, "ExpiredToken", "The provided token has expired."),
             "403": (403, "AccessDenied", "Access Denied"),
             "429": (503, "SlowDown", "Please reduce your request rate.")}
JSON_ERRORS = {"expired": (403, "ExpiredTokenException", "The security token included in the request is expired"),
               "403": (403, "AccessDeniedException", "User is not authorized to perform this action"),
               "429": (429, "TooManyRequestsException", "Rate exceeded")}
QUERY_ERRORS = {"expired": (403, "ExpiredToken", "The security token included in the request is expired"),
                "403": (403, "AccessDenied", "User is not authorized to perform this action"),
                "429": (400, "Throttling", "Rate exceeded")}


class FaultEndpoint:
    """``rules``: (service or "*", operation regex or "", fault) tried in order; the first match decides."""

    def __init__(self, upstream: str, slow_seconds: float = 3.0):
        self.upstream = urlsplit(upstream)
        self.rules: list[tuple[str, str, str]] = []
        self.slow_seconds = slow_seconds
        self.requests: Counter = Counter()
        self.faulted: Counter = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fault(self, fault: str, service: str = "*", operation: str = "") -> "FaultEndpoint":
        assert fault in FAULTS, fault
        self.rules.append((service, operation, fault))
        return self

    def route(self, upstream: str, service: str, operation: str = "") -> "FaultEndpoint":
        """Send the matching requests to another upstream (the real emulator, for invokes moto cannot run: its
        one function is called "function", so an invoke's function name is rewritten to it)."""
        self.rules.append((service, operation, upstream))
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.faulted.clear()

    def start(self) -> "FaultEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service, operation = endpoint._classify(self.command, self.path, self.headers, body)
                with endpoint._lock:
                    endpoint.requests[(service, operation)] += 1
                    fault = next((f for s, op, f in endpoint.rules if s in ("*", service) and re.search(op, operation)), None)
                    if fault and not fault.startswith("http://"):
                        endpoint.faulted[(service, operation)] += 1
                if fault is None or fault.startswith("http://"):
                    return self._forward(body, urlsplit(fault) if fault else endpoint.upstream)
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(endpoint.slow_seconds)
                    self.close_connection = True
                    return
                if fault == "500-html":
                    return self._send(500, HTML_500, "text/html")
                if fault == "404-html":
                    return self._send(404, HTML_404, "text/html")
                if service == "s3":
                    status, code, message = S3_ERRORS[fault]
                    return self._send(status, f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                                      f"<Message>{message}</Message></Error>".encode(), "application/xml")
                if service in ("sts", "iam"):
                    status, code, message = QUERY_ERRORS[fault]
                    return self._send(status, f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}"
                                      f"</Message></Error><RequestId>1</RequestId></ErrorResponse>".encode(), "text/xml")
                status, code, message = JSON_ERRORS[fault]
                self._send(status, json.dumps({"__type": code, "message": message}).encode(), "application/json",
                           {"x-amzn-ErrorType": code})

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self, body: bytes, upstream):
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    path = self.path
                    if upstream is not endpoint.upstream:
                        path = re.sub(r"/functions/[^/]+/invocations", "/functions/function/invocations", path)
                    connection.request(self.command, path, body=body or None, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _classify(method: str, path: str, headers, body: bytes) -> tuple[str, str]:
        found = SCOPE.search(headers.get("Authorization") or "")
        service = found.group(1) if found else "?"
        if service in ("sts", "iam"):
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
            return service, action
        if service == "s3":
            return service, f"{method} {urlsplit(path).path}"
        target = headers.get("X-Amz-Target")
        return service, target.rsplit(".", 1)[-1] if target else f"{method} {urlsplit(path).path}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
