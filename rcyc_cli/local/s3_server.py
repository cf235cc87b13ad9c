"""The embedded S3: moto's real HTTP server on a free 127.0.0.1 port, in a thread of this process."""

from __future__ import annotations


class EmbeddedS3:
    """moto's S3 server on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request to stderr by default; that is noise in a CLI (and in test output).
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url: str | None = None

    def start(self) -> "EmbeddedS3":
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

