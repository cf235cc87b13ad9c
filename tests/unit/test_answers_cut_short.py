"""Every HTTP client of rcyc's own (the stack's invoke, the results route, the image registry) meets an
answer cut short (a server that died mid-reply), an answer that is not HTTP, a connection closed at once,
and a token realm that answers a web page. Each ends as that client's own one-line error, never a traceback
(``http.client.IncompleteRead`` and ``BadStatusLine`` are not ``URLError``s)."""

from __future__ import annotations

import socket
import threading

import pytest

from rcyc_cli.classify.target import stack_store
from rcyc_cli.cloud.registry import Registry, RegistryError, remote_image
from rcyc_core.errors import AwsError, FunctionError
from tests.unit.test_stack_replies_hostile import remote

CUT_SHORT = {
    "died mid-answer": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"results\"",
    "died mid-refusal": b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n{\"error\"",
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
    "closed at once": b"",
}


class Replies:
    """A server on 127.0.0.1 that answers each connection with the next of ``replies`` as raw bytes;
    stopped by its handle."""

    def __init__(self, replies: list[bytes]):
        self.replies = list(replies)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for reply in self.replies:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            with connection:
                connection.settimeout(5)
                try:
                    connection.recv(1 << 20)
                    connection.sendall(reply)
                except OSError:
                    pass

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes an accept still waiting for a connection
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.fixture
def serve():
    servers: list[Replies] = []

    def start(*replies: bytes) -> Replies:
        servers.append(Replies(list(replies)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("reply", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_the_stacks_invoke(serve, reply):
    server = serve(reply)
    with pytest.raises(FunctionError) as caught:
        remote(f"http://127.0.0.1:{server.port}").invoke({"Records": []}, attempts=1)
    assert caught.value.kind == "EmulatorError" and "the local stack" in caught.value.message


@pytest.mark.parametrize("reply", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_the_results_route(serve, reply):
    server = serve(reply)
    with pytest.raises(AwsError) as caught:
        stack_store(f"http://127.0.0.1:{server.port}")("b", [("results/a.json", b"{}", {})])
    assert "the local stack" in caught.value.message


@pytest.mark.parametrize("reply", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_the_registry(serve, reply):
    server = serve(reply)
    with pytest.raises(RegistryError) as caught:
        remote_image(Registry(f"127.0.0.1:{server.port}", source="none"), "rcyc", "latest")
    assert f"127.0.0.1:{server.port}" in caught.value.message


def json_reply(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)


def login_through(serve, realm: str) -> tuple[Replies, pytest.ExceptionInfo]:
    """A registry that sends every request to log in at ``realm`` (a Bearer challenge), and what looking an
    image up there raised."""
    challenge = f'Bearer realm="{realm}",service="r"'
    registry = serve(f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode(),
                     b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with pytest.raises(RegistryError) as caught:
        remote_image(Registry(f"127.0.0.1:{registry.port}", source="none"), "rcyc", "latest")
    return registry, caught


@pytest.mark.parametrize("token", [b"<html>sign in</html>", b"[1, 2]", b"null"] + list(CUT_SHORT.values())[:2],
                         ids=["a web page", "a list", "null", "died mid-answer", "died mid-refusal"])
def test_a_registry_whose_token_realm_answers_no_token(serve, token):
    realm = serve(token if token.startswith(b"HTTP/") else json_reply(token))
    registry, caught = login_through(serve, f"http://127.0.0.1:{realm.port}/token")
    assert f"127.0.0.1:{registry.port}" in caught.value.message


NOT_A_STORE_ANSWER = {"a list": b"[]", "a number": b"7", "null": b"null", "no etags": b"{}",
                      "etags a number": b'{"etags": 7}', "error a string": b'{"error": "full"}',
                      "error kind a list": b'{"error": {"message": "m", "kind": ["x"]}}',
                      "nested past the parser": b"[" * 100_000}


@pytest.mark.parametrize("body", NOT_A_STORE_ANSWER.values(), ids=NOT_A_STORE_ANSWER.keys())
def test_the_results_route_answering_json_of_another_shape(serve, body):
    server = serve(json_reply(body))
    with pytest.raises(AwsError) as caught:
        stack_store(f"http://127.0.0.1:{server.port}")("b", [("results/a.json", b"{}", {})])
    assert "the local stack" in caught.value.message
    assert isinstance(caught.value.kind, str) and caught.value.kind.isprintable()


HOSTILE_TOKENS = {"a header break": b'{"token": "a\\r\\nX-Evil: 1"}', "a NUL": b'{"token": "a\\u0000b"}'}


@pytest.mark.parametrize("token", HOSTILE_TOKENS.values(), ids=HOSTILE_TOKENS.keys())
def test_a_registry_whose_token_cannot_be_a_header(serve, token):
    realm = serve(json_reply(token))
    registry, caught = login_through(serve, f"http://127.0.0.1:{realm.port}/token")
    assert f"127.0.0.1:{registry.port}" in caught.value.message and caught.value.kind == "RegistryLoginRefused"


@pytest.mark.parametrize("realm", ["nonsense", "file", "http://[::1"])
def test_a_registry_whose_token_realm_is_no_web_address(serve, tmp_path, realm):
    if realm == "file":  # a file: realm would read this machine's files and send them as the token
        (tmp_path / "token.json").write_text('{"token": "a local secret"}')
        realm = (tmp_path / "token.json").as_uri()
    registry, caught = login_through(serve, realm)
    assert f"127.0.0.1:{registry.port}" in caught.value.message and "answered no token" in caught.value.message
