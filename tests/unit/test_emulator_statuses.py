"""What the emulator answers with an error status is an answer, not silence. A 502 carries Lambda's own error
object when the function's runtime died mid-invoke (a crash, ``os._exit``, a kill for memory) or its init
failed: that is the function's failure, under Lambda's name for it. Anything else is the emulator's, named
with its status and what it said.

A stand-in emulator on 127.0.0.1 answers each status; the sandbox under test is the real invoke path.
(tests/e2e/test_invoke_api.py kills a real runtime under the real emulator.)"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from rcyc_cli.local.emulator.sandbox import Sandbox
from rcyc_core.errors import FunctionError

EXIT = {"errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: 1f0e Error: Runtime exited with error: signal: killed"}


class StandIn(Sandbox):
    """A sandbox whose emulator is the stand-in server; its log is what the test gives it."""

    def __init__(self, port: int, log: bytes = b""):
        self.port, self._log, self.timeout = port, log, 5

    def read_new_log(self) -> bytes:
        log, self._log = self._log, b""
        return log


@pytest.fixture
def emulator():
    """Serves (status, body) from ``answer``, which the test sets; stopped by its handle."""
    answer: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = answer["reply"]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def failure_of(sandbox: Sandbox) -> FunctionError:
    with pytest.raises(FunctionError) as caught:
        sandbox.invoke({"Records": []})
    return caught.value


@pytest.mark.parametrize("error", [EXIT, {"errorType": "Runtime.Unknown", "errorMessage": "init failed"}])
def test_a_502_with_lambdas_error_object_is_the_functions_failure_under_its_lambda_name(emulator, error):
    port, answer = emulator
    answer["reply"] = (502, json.dumps(error).encode())
    failure = failure_of(StandIn(port, b"[WARNING] (rapid) Process runtime-3 exited: signal: killed\n"))
    assert failure.kind == error["errorType"]
    assert failure.message == f"the function failed: {error['errorType']}: {error['errorMessage']}"
    assert failure.logs == ["[WARNING] (rapid) Process runtime-3 exited: signal: killed"]
    assert "did not answer" not in failure.message
    assert ("--memory" in failure.hint) == ("signal: killed" in error["errorMessage"])


@pytest.mark.parametrize("status, body", [
    (502, b""),                                    # no error object
    (502, b"<html>Bad Gateway</html>"),            # not JSON
    (502, b'{"errorType": "X"}'),                  # half an error object
    (502, b"Task timed out after 5.00 seconds"),   # a timeout comes with 200; under 502 it is not one
    (502, b"[" * 100_000),                         # nested past the parser's recursion limit
    (504, b""),                                    # the emulator's reservation ended (a reset)
    (500, b"internal"),
    (400, b"already reserved"),
])
def test_any_other_status_is_the_emulators_error_named_with_its_status_and_what_it_said(emulator, status, body):
    port, answer = emulator
    answer["reply"] = (status, body)
    failure = failure_of(StandIn(port))
    assert failure.kind == "EmulatorError"
    assert failure.message.startswith(f"the emulator answered HTTP {status} (")
    assert "did not answer" not in failure.message
    assert len(failure.message) < 300  # what it said, cut short
    assert body[:50].decode().strip() in failure.message


def test_a_port_nobody_listens_on_is_still_the_emulator_not_answering():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failure = failure_of(StandIn(port))
    assert failure.kind == "EmulatorError" and failure.message.startswith("the emulator did not answer")


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"results\"",   # died mid-answer
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100\r\n\r\n{\"errorType\"",
    b"SSH-2.0-OpenSSH_9.2\r\n",                                      # not HTTP at all
    b"",                                                             # closed at once
])
def test_an_answer_cut_short_or_not_http_is_the_emulator_not_answering(reply):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        failure = failure_of(StandIn(listener.getsockname()[1]))
    finally:
        thread.join(timeout=10)
        listener.close()
    assert failure.kind == "EmulatorError", failure.message
    assert failure.message.startswith(("the emulator did not answer", "the emulator answered HTTP 502")), failure.message
