"""The embedded S3: moto's S3 (its WSGI app for S3 alone, served by werkzeug) on a free 127.0.0.1 port, in
a thread of this process.

Only S3: moto's all-services dispatcher works out the service of every request by matching its host
against hundreds of URL patterns (listing its own package folder on the way), under one lock for all
request threads; nothing here asks the embedded S3 for another service (benchmarks/s3_server.py compares
the two).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

POLL_SECONDS = 0.05  # how often the serving loop looks for a stop: werkzeug's 0.5 s default cost each one-shot run ~0.4 s


class EmbeddedS3:
    """moto's S3 server on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self, listener=None):
        """``listener``: a socket already bound and listening to serve on (its address can be handed out
        before moto is loaded; requests wait in its queue until ``start``); by default a free port."""
        import logging

        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # werkzeug logs every request to stderr by default; that is noise in a CLI (and in test output).
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from .s3_get import keep_alive_gets
        from .s3_listing import fast_listing

        # listings and the function's GETs answered from the store, without moto's request handling
        app = fast_listing(create_backend_app("s3"), self._backend)
        self._handler = keep_alive_gets(MotoRequestHandler, self._backend)
        _stop_tracking_instances()
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=self._handler,
                                   fd=listener.fileno() if listener is not None else None)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def start(self) -> "EmbeddedS3":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        daemon=True, name="embedded-s3")
        self._thread.start()
        return self

    def seed_model(self, bucket: str, manifest, model_dir, pointer_key: str) -> None:
        """A private, versioned bucket holding the model (each file checked against the manifest first) and
        the pointer naming it, written into the store directly: a fresh stack's model is ready without the
        ~25 signed round trips of a publish through boto3. An unchanged model is not written again."""
        import json

        from ...cloud.buckets import BLOCK_ALL, validate_bucket_name
        from rcyc_core.manifest import MANIFEST_NAME

        from ...cloud.store import model_files, model_prefix, pointer_body

        backend = self._backend()
        if bucket not in backend.buckets:
            from ...defaults import LOCAL_REGION

            backend.create_bucket(validate_bucket_name(bucket), LOCAL_REGION)
            backend.put_public_access_block(bucket, dict(BLOCK_ALL))
            backend.put_bucket_versioning(bucket, "Enabled")
        current = backend.get_object(bucket, pointer_key)
        if current is not None and json.loads(current.value or b"{}").get("sha256") == manifest.sha256:
            return
        manifest_key = model_prefix(manifest) + MANIFEST_NAME
        items = [(key, path.read_bytes()) for path, key in model_files(manifest, model_dir)]
        self.put_objects(bucket, items)
        self.put_documents(bucket, [(manifest_key, manifest.to_json().encode(), {}),
                                    (pointer_key, pointer_body(manifest, manifest_key), {})])

    # The process that hosts the server can write into its store directly: no HTTP, no request signing
    # (~0.02 ms an object against ~5 ms through boto3). The warm stack puts a run's images this way; what
    # the function reads still goes through the S3 API over HTTP, as on AWS.
    def put_objects(self, bucket: str, items: Iterable[tuple[str, bytes]]) -> None:
        backend = self._backend()
        for key, body in items:
            backend.put_object(bucket, key, body)

    def writes_here(self, bucket: str) -> bool:
        """Whether ``bucket``'s objects may be written (and removed) in the store directly: not where moto would
        do more than store them (a bucket policy that may deny the write, bucket logging, moto's
        authentication, its cross-account lock or recorder: ``served_here``). A bucket that does not exist is
        "here": writing to it fails with moto's own NoSuchBucket."""
        from .s3_listing import served_here

        backend = self._backend()
        return bucket not in backend.buckets or served_here(backend.buckets[bucket])

    def put_documents(self, bucket: str, items: list[tuple[str, bytes, dict[str, str]]]) -> list[str]:
        """JSON objects with user metadata, as a PUT with ``Content-Type: application/json`` and
        ``x-amz-meta-*`` headers stores them; returns their ETags."""
        backend = self._backend()
        etags = []
        for key, body, metadata in items:
            stored = backend.put_object(bucket, key, body)
            stored.set_metadata({"Content-Type": "application/json", **{f"x-amz-meta-{k}": v for k, v in metadata.items()}})
            etags.append(stored.etag)
        return etags

    def delete_documents(self, bucket: str, keys: list[str]) -> list[str]:
        """Remove these objects as a DeleteObject through the S3 API does (a delete marker in a versioned
        bucket); returns the keys that are gone now (one already gone counts: S3 answers its delete alike)."""
        backend = self._backend()
        gone = []
        for key in keys:
            try:
                backend.delete_object(bucket, key)
            except Exception:  # moto's own errors (no such bucket): not said gone, the client's S3 API tries
                continue
            gone.append(key)
        return gone

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        backend = self._backend()
        # Every version: the stack's bucket is versioned, and a plain delete would only add a delete marker
        # and keep each run's images (the stack grew by every image routed through it).
        keys = backend.get_bucket(bucket).keys
        for name in [k for k in keys.keys() if k.startswith(prefix)]:
            for version in keys.getlist(name, []):
                if hasattr(version, "dispose"):
                    version.dispose()  # its body's buffer closed now, not when the collector finds it
            dict.pop(keys, name, None)  # the store's own pop calls dispose() on a delete marker too, which has none

    # The warm stack's own CLI reads through these (stack.protocol S3_LIST_PATH, S3_OBJECT_PATH): a page and an
    # object from the store, with no signed round trip, so a command that only reads needs no boto3. moto's own
    # errors (NoSuchBucket, InvalidArgument) go to the caller; None: ask the S3 API (s3_listing.served_here).
    def list_page(self, bucket: str, prefix: str, token: str | None, max_keys: int) -> dict | None:
        from moto.s3.exceptions import InvalidContinuationToken

        from .s3_listing import served_here

        backend = self._backend()
        found = backend.get_bucket(bucket)
        if not served_here(found):
            return None
        try:
            keys, truncated, next_token = backend.list_objects_v2(bucket=found, prefix=prefix or None, delimiter=None,
                                                                  continuation_token=token, start_after=None,
                                                                  max_keys=max_keys)
        except TypeError:  # a token this store never gave out (moto compares its key names with None)
            raise InvalidContinuationToken() from None
        page = {"IsTruncated": truncated, "KeyCount": len(keys),
                "Contents": [{"Key": key.name, "Size": key.size, "ETag": key.etag} for key in keys]}
        if next_token:
            page["NextContinuationToken"] = next_token
        return page

    def read_object(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        """(body, ETag) of ``key``; moto's NoSuchKey when there is none (or it is deleted)."""
        from moto.s3.exceptions import MissingKey

        from .s3_listing import served_here

        backend = self._backend()
        if not served_here(backend.get_bucket(bucket)):
            return None
        stored = backend.get_object(bucket, key)
        if stored is None:
            raise MissingKey(key=key)
        return stored.value, stored.etag

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
        self._handler.connections.end()  # kept connections too: no answer from a stopped server, no thread left


def _stop_tracking_instances() -> None:
    """moto keeps every model object it ever made (each object put, overwritten or deleted, with its ACL and
    grants) in a list per class, for a dashboard the embedded S3 does not serve: a warm stack grew by every
    image routed through it. A list that keeps nothing; what a bucket holds is unaffected."""
    from collections import deque

    from moto.core.model_instances import model_data

    for models in model_data.values():
        for model in models.values():
            model.instances_tracked = deque(maxlen=0)
