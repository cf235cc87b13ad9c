"""The embedded S3: moto's real HTTP server (its WSGI app, served by werkzeug) on a free 127.0.0.1 port,
in a thread of this process."""

from __future__ import annotations

import threading

POLL_SECONDS = 0.05  # how often the serving loop looks for a stop: werkzeug's 0.5 s default cost each one-shot run ~0.4 s


class EmbeddedS3:
    """moto's S3 server on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self):
        import logging

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # werkzeug logs every request to stderr by default; that is noise in a CLI (and in test output).
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                                   request_handler=MotoRequestHandler)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def start(self) -> "EmbeddedS3":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        daemon=True, name="embedded-s3")
        self._thread.start()
        return self

    # The process that hosts the server can write into its store directly: no HTTP, no request signing
    # (~0.02 ms an object against ~5 ms through boto3). The warm stack puts a run's images this way; what
    # the function reads still goes through the S3 API over HTTP, as on AWS.
    def put_objects(self, bucket: str, items: list[tuple[str, bytes]]) -> None:
        backend = self._backend()
        for key, body in items:
            backend.put_object(bucket, key, body)

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        """Every version of every object under ``prefix``, gone, its buffer closed and its memory freed: the
        stack's bucket is versioned (as rcyc makes buckets), where a delete only adds a marker and keeps the
        bytes, readable by VersionId; moto's spooled temp files stay open until closed; and moto tracks
        every model object it ever made (``instances_tracked``, for its reset), so a long-lived stack grew
        by each image routed through it until they are untracked here."""
        from moto.s3.models import FakeKey

        store = self._backend().get_bucket(bucket).keys
        gone: list[object] = []
        # the versions in the bucket, and the copies moto made of them to answer each GET (tracked too)
        copies = [k for k in getattr(FakeKey, "instances_tracked", [])
                  if getattr(k, "bucket_name", None) == bucket and str(getattr(k, "name", "")).startswith(prefix)]
        versions = [v for key in list(store.keys()) if key.startswith(prefix) for v in store.getlist(key, None) or []]
        for version in versions + copies:
            dispose = getattr(version, "dispose", None)
            if dispose is not None:
                dispose()
            acl = getattr(version, "acl", None)
            grants = getattr(acl, "grants", None) or []
            gone += [version, acl, *grants, *(g for grant in grants for g in getattr(grant, "grantees", []))]
        for key in [k for k in list(store.keys()) if k.startswith(prefix)]:
            dict.pop(store, key, None)  # the store's own pop disposes too, but fails on a delete marker
        _untrack(gone)

    @staticmethod
    def _backend():
        from moto.backends import get_backend
        from moto.core import DEFAULT_ACCOUNT_ID

        return get_backend("s3")[DEFAULT_ACCOUNT_ID]["global"]

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


def _untrack(objects: list[object]) -> None:
    ids = {id(o) for o in objects if o is not None}
    for cls in {type(o) for o in objects if o is not None}:
        tracked = getattr(cls, "instances_tracked", None)
        if isinstance(tracked, list):
            tracked[:] = [o for o in tracked if id(o) not in ids]
