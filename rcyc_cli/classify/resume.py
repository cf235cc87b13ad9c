"""What a rerun of ``rcyc classify`` may skip, without one request per key.

A result's metadata names the model that made it, but a listing shows no metadata: it shows each object's
ETag (its content hash). So a run leaves an index for the current model under
``<results prefix>.rcyc-index/<model sha256>/``: every key it knows to be done by that model, with its
result's ETag and entry. A rerun lists the results once and reads the model's index files (one request a
file; a run that looks keys up merges them into one, a forced run adds its own beside a few); a key whose listed ETag is the indexed one has a result by the current model,
unchanged since it was checked, which counts while the image's own listed ETag is the one it was made from; a key with a result the index does not vouch for is read (one GET, as
without an index); a key with no result is classified. The index is held in memory while a run lasts
(about 0.3 KB a done key).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from rcyc_core.labels import LABELS
from rcyc_core.result_store import read_result

from ..cloud.aws import aws_call, translate
from ..defaults import INDEX_FOLDER
from .listing import pages

DONE, READ, NEW = "done", "read", "new"
INDEX_BYTES_PER_KEY = 1024  # a real index holds about 0.3 KB a key
INDEX_MIN_BUDGET = 64 * 1024 * 1024
INDEX_FILES_BESIDE = 4  # a forced run adds its index file beside fewer files than this; with more, it merges them


class Resume:
    def __init__(self, s3, bucket: str, results_prefix: str, prefix: str, model_sha: str):
        self.s3, self.bucket, self.results_prefix, self.prefix, self.model_sha = s3, bucket, results_prefix, prefix, model_sha
        self.folder = f"{results_prefix}{INDEX_FOLDER}{model_sha}/"
        self.done: dict[str, tuple[str, dict]] = {}  # key -> (result ETag, entry), checked in this run
        self.model: dict | None = None
        self._with_result: set[str] = set()  # keys with a result the index does not vouch for
        self._carried: dict[str, tuple[str, dict]] = {}  # indexed keys outside this run's prefix, kept as they were
        self._files: list[str] = []
        self._changed = False
        self._lock = threading.Lock()

    def load(self, list_results: bool = True) -> "Resume":
        """Read the model's index, and list the results under this run's prefix to check it against. With
        ``list_results`` False (--force: every key is classified again, nothing is looked up) no result is
        listed, and while the index has few files none is read: this run's index file goes beside them (the next
        run that looks keys up merges them), so a forced run costs its own keys, not every key the model did."""
        index_root = self.results_prefix + INDEX_FOLDER
        listed: dict[str, str] = {}  # key -> its result's ETag
        for obj in self._list(self.results_prefix + self.prefix) if list_results else ():
            name = obj["Key"]
            if not name.startswith(index_root) and name.endswith(".json"):
                listed[name[len(self.results_prefix):-len(".json")]] = obj.get("ETag")
        files = list(self._list(self.folder))
        if not list_results and len(files) < INDEX_FILES_BESIDE:
            return self  # nothing carried, nothing replaced: save() writes this run's keys alone
        # An index is a hint: one far larger than the results it could vouch for is not read at all.
        budget = max(INDEX_MIN_BUDGET, INDEX_BYTES_PER_KEY * len(listed))
        indexed: dict[str, tuple[str, dict]] = {}
        for obj in files:
            budget -= obj.get("Size", 0)
            document = self._read_index(obj["Key"]) if budget >= 0 else None
            if document is not None:
                self._files.append(obj["Key"])
                model = document.get("model")
                if isinstance(model, dict) and model.get("sha256") == self.model_sha:
                    self.model = self.model or model
                indexed.update({key: (etag, _stored(entry)) for key, (etag, entry) in document["results"].items()
                                if isinstance(etag, str) and isinstance(key, str) and _is_entry(entry)})
        for key, etag in listed.items():
            known = indexed.pop(key, None)
            if known is not None and known[0] == etag:
                self.done[key] = known
            else:
                self._with_result.add(key)
        # Kept as they were: keys outside this run's prefix, and under --force (nothing listed) every key (a
        # result this run rewrites replaces its entry; one it does not is still checked by ETag when looked up).
        self._carried = {key: value for key, value in indexed.items() if not (list_results and key.startswith(self.prefix))}
        # Index entries whose result changed or went away, or several files: the next index says it once.
        self._changed = len(indexed) != len(self._carried) or len(self._files) > 1
        return self

    def lookup(self, key: str, image: str) -> tuple[str, dict | None]:
        """(DONE, the stored entry), (READ, None): a result to read and check, or (NEW, None): no result, or
        one made from other bytes than the image listed now (ETag ``image``)."""
        known = self.done.get(key)
        if known is not None and self.model is None:  # no index named the model: read the result instead
            return READ, None
        if known is not None:
            if image and made_from(known[1]) == image:
                return DONE, {**known[1], "key": key, "bucket": self.bucket, "model": self.model}
            return NEW, None
        return (READ if key in self._with_result else NEW), None

    def record(self, entry: dict, model: dict | None, etag: str) -> None:
        """A result by the current model that this run wrote or read (with its ETag)."""
        if not etag or not model or model.get("sha256") != self.model_sha:
            return
        stored = _stored(entry)
        with self._lock:
            self.done[entry["key"]] = (etag, stored)
            self.model = self.model or model
            self._changed = True

    def save(self, store=None) -> None:
        """Write this run's index and remove the files it replaces (best effort: a file left over is read and
        merged by the next run, never trusted beyond the ETags it names). ``store``: the local stack's results
        route (``Target.store``), which writes it without an S3 client: making one was about 0.2 s of CPU at
        the very end of a local run, when nothing else is left to do."""
        with self._lock:
            if not self._changed:
                return
            results = {**self._carried, **self.done}
            self._changed = False
        name = f"{self.folder}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}.json"
        body = json.dumps({"model_sha256": self.model_sha, "model": self.model, "results": results}).encode()
        replaced = _stored_by(store, self.bucket, name, body, self._files)
        if replaced is None:
            aws_call(f"write the resume index s3://{self.bucket}/{name}", self.s3.put_object, Bucket=self.bucket,
                     Key=name, Body=body, ContentType="application/json")
            replaced = []
        for old in self._files:
            if old in replaced:  # the stack removed it with the write: no S3 client made for this
                continue
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=old)
            except Exception:  # not allowed to delete, or gone: the next run merges it
                pass
        self._files = [name]

    def _read_index(self, name: str) -> dict | None:
        stored, _ = _read(self.s3, self.bucket, name)
        if not isinstance(stored, dict) or stored.get("model_sha256") != self.model_sha or not isinstance(stored.get("results"), dict):
            return None
        if not all(isinstance(v, list) and len(v) == 2 and isinstance(v[1], dict) for v in stored["results"].values()):
            return None
        return stored

    def _list(self, prefix: str):
        for page in pages(self.s3, self.bucket, prefix):
            yield from page.get("Contents", [])


def _stored_by(store, bucket: str, key: str, body: bytes, replaces: list[str]) -> list[str] | None:
    """The files of ``replaces`` the results route removed once it stored the index, or None: it did not store
    it. An index too large for the route's one request (it escapes the document inside another), a stack that
    predates the route or one that refuses it: None, and the S3 API writes it, as everywhere else. The old
    files go with the same request: deleted through S3, they made the very client the route is taken to avoid."""
    from ..local.stack.protocol import SYNC_PAYLOAD_LIMIT  # what the route reads of one request
    from .target import NotReplaced

    if store is None or 2 * len(body) > SYNC_PAYLOAD_LIMIT:
        return None
    try:
        store(bucket, [(key, body, {})], **({"replaces": list(replaces)} if replaces else {}))
    except NotReplaced:  # stored by a stack from before "replaces": the old files are S3's to remove
        return []
    except Exception:  # NoStoreRoute, or the route's AwsError: the S3 API's turn
        return None
    return list(replaces)


def made_from(document: dict) -> str | None:
    """The ETag of the image bytes a result (or index entry) says it was made from."""
    obj = document.get("object")
    return obj.get("etag") if isinstance(obj, dict) and isinstance(obj.get("etag"), str) else None


def _stored(entry: dict) -> dict:
    """What an index keeps of an entry: never its key, bucket or model (the lookup says those)."""
    return {k: v for k, v in entry.items() if k not in ("key", "bucket", "record", "model")}


def _is_entry(entry: object) -> bool:
    """An entry of the result contract: a label of this model's classes with a confidence, or an error."""
    if not isinstance(entry, dict):
        return False
    if "label" in entry:
        confidence = entry.get("confidence")
        return (isinstance(entry["label"], str) and entry["label"] in LABELS and isinstance(confidence, (int, float))
                and not isinstance(confidence, bool) and 0 <= confidence <= 1)
    return isinstance(entry.get("error"), str) and isinstance(entry.get("message", ""), str)


def read_checked(s3, bucket: str, results_prefix: str, key: str) -> tuple[dict | None, str]:
    """The stored result of ``key`` and its ETag (one GET)."""
    try:
        return read_result(s3, bucket, results_prefix, key, with_etag=True)
    except Exception as exc:
        raise translate(f"read the result of {key}", exc) from None


def _read(s3, bucket: str, name: str) -> tuple[object, str]:
    """An index file's document, or None: not JSON, or gone since it was listed (another run on the prefix
    merged it into its own and removed it; its entries are in that run's file, or checked by ETag here)."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=name)
        return json.loads(obj["Body"].read()), obj.get("ETag", "")
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None, ""
    except Exception as exc:
        error = translate(f"read s3://{bucket}/{name}", exc)
        if error.kind in ("NoSuchKey", "404"):
            return None, ""
        raise error from None
