"""One backfill: list, skip what is already done for the current model, invoke the rest with bounded
concurrency, write each result to S3 and one line per key to --output, and sum it up."""

from __future__ import annotations

import collections
import csv
import json
import threading
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from rcyc_core import events
from rcyc_core.answers import IMAGE_ERRORS
from rcyc_core.errors import AwsError, FunctionError, InputError, RcycError
from rcyc_core.labels import LABELS

from ..cloud.buckets import parse_s3_uri
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CLASSIFY_CONCURRENCY, DEFAULT_FUNCTION, DEFAULT_RESULTS_PREFIX
from ..files import check_text, shown
from ..outputs import atomic_file, check_output_file
from ..reporting import SILENT, Reporter
from . import cost
from .listing import Counts, batches, iter_images, lean_timestamps
from .resume import READ, Resume, made_from, read_checked
from .target import Target, in_background, invoke
from .writer import Writer

S3_MAX_KEY_BYTES = 1024  # S3 refuses a longer key (UTF-8)
KEEP_LISTING = 100_000  # images (key, ETag) kept from the counting listing (~20 MB); a larger prefix is listed again
OUTPUT_COLUMNS = ["key", "label", "confidence", *LABELS, "model_version", "error", "message"]


@dataclass
class ClassifyOptions:
    uri: str
    local: bool = False
    endpoint_url: str | None = None  # --local: the S3 the local function reads (default: the stack's own)
    function: str = DEFAULT_FUNCTION
    concurrency: int = DEFAULT_CLASSIFY_CONCURRENCY
    batch_size: int = DEFAULT_BATCH_SIZE
    results_prefix: str = DEFAULT_RESULTS_PREFIX
    output: Path | None = None
    force: bool = False
    limit: int | None = None
    dry_run: bool = False
    region: str | None = None


class Output:
    """--output as JSONL or CSV, written beside FILE and renamed over it when the run completes (an interrupted run
    leaves no half file; the rerun writes every key again, the finished ones from their stored results)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.format = None if path is None else ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        if path is not None and path.suffix.lower() not in (".csv", ".jsonl", ".json"):
            raise InputError(f"--output {shown(path)} must end in .jsonl or .csv", hint="e.g. --output results.jsonl")
        self._file = self._csv = None

    def __enter__(self) -> "Output":
        if self.path is not None:
            self._writing = atomic_file(self.path, "--output", "w", newline="", encoding="utf-8")
            self._file = self._writing.__enter__()
            if self.format == "csv":
                self._csv = csv.DictWriter(self._file, OUTPUT_COLUMNS)
                self._csv.writeheader()
        return self

    def write(self, entry: dict, model: dict | None) -> None:
        if self._file is None:
            return
        row = {"key": entry["key"], "label": entry.get("label"), "confidence": entry.get("confidence"),
               **{label: (entry.get("scores") or {}).get(label) for label in LABELS},
               "model_version": (model or {}).get("version"), "error": entry.get("error"), "message": entry.get("message")}
        if self._csv is not None:
            self._csv.writerow(row)
        else:
            self._file.write(json.dumps(row) + "\n")

    def __exit__(self, kind, value, traceback) -> None:
        if self._file is not None:
            self._writing.__exit__(kind, value, traceback)


class Tally:
    def __init__(self):
        self.labels = collections.Counter()
        self.errors = collections.Counter()
        self.done_before = 0
        self.classified = 0
        self.invocations = 0
        self.billed_ms = 0.0
        self.retries = 0
        self.models: dict[str, dict] = {}
        self._lock = threading.Lock()

    def invoked(self, answer) -> None:
        with self._lock:  # worker threads report here
            self.invocations += 1
            self.retries += answer.attempts - 1
            self.billed_ms += answer.report.billed_ms or 0

    def add(self, entry: dict, model: dict | None, reused: bool) -> None:
        if reused:
            self.done_before += 1
        if "label" in entry:
            self.labels[entry["label"]] += 1
            self.classified += not reused
        else:
            self.errors[entry.get("error", "Error")] += 1
        if model and model.get("sha256"):
            self.models[model["sha256"]] = model


def current_model(target: Target, s3, bucket: str) -> dict | None:
    """The pointer the function reads (its model bucket's), or None when it cannot be read."""
    from ..cloud import store

    try:
        return store.read_pointer(s3, target.model_bucket or bucket)
    except Exception:
        return None


def check_options(options: ClassifyOptions) -> tuple[str, str]:
    """(bucket, prefix) once the address, the results prefix and --output are usable; before any work (a
    local stack is started, a listing made)."""
    bucket, prefix = parse_s3_uri(check_text(options.uri, "the address"), hint="e.g. rcyc classify s3://my-bucket/photos/")
    results_prefix = options.results_prefix
    if not results_prefix or not results_prefix.endswith("/"):
        raise InputError(f"--results-prefix {shown(results_prefix)} must end in '/'", hint="e.g. --results-prefix results/")
    if prefix.startswith(results_prefix):
        # every key listed would count as a result: nothing would be classified, and the run would say 0
        raise InputError(f"s3://{shown(bucket)}/{shown(prefix)} is under the results prefix (--results-prefix {shown(results_prefix)})",
                         hint="Pick a --results-prefix outside the images, e.g. results/.")
    if options.output is not None:
        Output(options.output)  # its format, from the name
        check_output_file(options.output, "--output")
    return bucket, prefix


def classify(options: ClassifyOptions, target: Target, s3, report: Reporter = SILENT) -> dict:
    bucket, prefix = check_options(options)
    results_prefix = options.results_prefix
    concurrency = min(options.concurrency, target.concurrency_limit or options.concurrency)
    lean_timestamps(s3)
    pointer = current_model(target, s3, bucket)
    current_sha = (pointer or {}).get("sha256")

    report.status(f"listing s3://{bucket}/{prefix}")
    resume = Resume(s3, bucket, results_prefix, prefix, current_sha) if current_sha else None
    # The results (what a rerun may skip) are listed while the images are: two listings, one wait.
    loading = in_background(resume.load, not options.force) if resume is not None else None
    summary = {"bucket": bucket, "prefix": prefix, "target": target.kind, "function": target.function,
               "endpoint": target.endpoint, "images": None, "not_images": None, "not_image_examples": None,
               "results_prefix": results_prefix, "concurrency": concurrency, "batch_size": options.batch_size, "current_model": pointer,
               "memory_mb": target.memory_mb, "architecture": target.architecture}
    if options.dry_run:
        counted, listed = _count(s3, bucket, prefix, results_prefix, options.limit)
        resume = loading.result() if loading else None
        todo = counted.images if options.force else sum(
            1 for key, image in _keys(listed, s3, bucket, prefix, results_prefix, options.limit)
            if _reusable(s3, bucket, results_prefix, key, image, resume) is None)
        summary.update(_counts(counted), dry_run=True, to_classify=todo, done_before=counted.images - todo,
                       estimate=cost.estimate(todo, options.batch_size, concurrency, target.memory_mb, target.architecture))
        return summary

    tally, counted = Tally(), Counts()
    started = time.perf_counter()
    writer = Writer(s3, bucket, results_prefix, max(2, concurrency), resume, target.store)

    def work(objects: list[tuple[str, str]]) -> tuple[list[tuple[dict, dict | None, bool]], list[Future]]:
        loaded = loading.result() if loading else None  # the first events wait for the index (a failure ends the run)
        out, todo, written = [], {}, []
        for key, image in objects:
            if (unstorable := _result_key_too_long(bucket, results_prefix, key)) is not None:
                out.append((unstorable, None, False))  # not invoked: its result could not be stored
                continue
            stored = None if options.force else _reusable(s3, bucket, results_prefix, key, image, loaded)
            if stored is not None:
                out.append((stored, stored.get("model"), True))
            else:
                todo[key] = image
        if todo:
            entries, written = _classify_keys(target, writer, bucket, todo, tally)
            out += entries
        return out, written

    def listed() -> None:
        """The listing is done (the events went out as it went): what it found, and the total to expect."""
        if loading:
            loading.result()
        report.status(f"{counted.images} images ({counted.not_images} other objects, never invoked); "
                      f"concurrency {concurrency}, events of up to {options.batch_size} records")
        report.expect(counted.images)

    # Invoked as listed: a first page of a few events' keys (the instances start at once), then full pages.
    keys = iter_images(s3, bucket, prefix, results_prefix, counted, options.limit, first_page=2 * concurrency * options.batch_size)
    failure: BaseException | None = None
    try:
        with Output(options.output) as output:
            _run_batches(work, batches(keys, options.batch_size), concurrency, output, tally, report, listed)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        writer.close()
        if loading is not None and loading.done() and loading.exception() is None:
            _save_quietly(resume, target.store)
        _say_lost(writer, failure)
    seconds = time.perf_counter() - started
    summary.update(_counts(counted), dry_run=False, classified=tally.classified, done_before=tally.done_before,
                   per_class={label: tally.labels[label] for label in LABELS}, errors=dict(tally.errors),
                   invocations=tally.invocations, retries=tally.retries, seconds=round(seconds, 3),
                   images_per_second=round(tally.classified / seconds, 2) if seconds and tally.classified else None,
                   models=list(tally.models.values()), output=str(options.output) if options.output else None,
                   warnings=_stale_model_warnings(tally, pointer))
    if target.kind == "aws" or tally.billed_ms:
        summary.update(billed_ms=round(tally.billed_ms), gb_seconds=round(cost.gb_seconds(tally.billed_ms, target.memory_mb), 3),
                       cost_usd=round(cost.cost(tally.billed_ms, tally.invocations, target.memory_mb, target.architecture), 6))
    return summary


def _counts(counted: Counts) -> dict:
    return {"images": counted.images, "not_images": counted.not_images, "not_image_examples": counted.not_images_examples}


def _run_batches(work, batched, concurrency: int, output: Output, tally: Tally, report: Reporter, listed) -> None:
    """Each batch to ``work`` in a pool of ``concurrency`` threads, at most twice that many waiting; ``listed()``
    once every batch is handed over; their entries written out as they finish."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="classify") as pool:
        pending: set[Future] = set()
        try:
            for batch in batched:
                pending.add(pool.submit(work, batch))
                if len(pending) >= 2 * concurrency:
                    pending = _drain(pending, output, tally, report, FIRST_COMPLETED)
            listed()
            _drain(pending, output, tally, report, ALL_COMPLETED)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _stale_model_warnings(tally: Tally, pointer: dict | None) -> list[str]:
    """A model that answered but is not the pointer's: warm instances still serve an older model (the
    pointer's version may not load), so results are not by the model the pointer names."""
    if not pointer or not pointer.get("sha256"):
        return []
    return [f"the function answered with {m.get('name')} {m.get('version')} (sha256 {str(m.get('sha256'))[:12]}…), not the "
            f"pointer's {pointer.get('name')} {pointer.get('version')}: its instances could not load the pointer's model "
            "(rcyc models promote --eval checks a version before it goes live)"
            for sha, m in tally.models.items() if sha != pointer["sha256"]]


def _count(s3, bucket: str, prefix: str, results_prefix: str, limit: int | None) -> tuple[Counts, list[tuple[str, str]] | None]:
    """What is under the prefix, and its image keys when there are few enough to keep for the run: one
    listing, not two (a listing is most of a resume)."""
    counted, listed = Counts(), []
    for image in iter_images(s3, bucket, prefix, results_prefix, counted, limit):
        if listed is not None:
            listed.append(image)
            if len(listed) > KEEP_LISTING:
                listed = None
    return counted, listed


def _keys(listed: list[tuple[str, str]] | None, s3, bucket: str, prefix: str, results_prefix: str, limit: int | None):
    """The images (key, ETag) again: the first listing's when it was kept, else a second listing."""
    return iter(listed) if listed is not None else iter_images(s3, bucket, prefix, results_prefix, Counts(), limit)


def _drain(pending: set[Future], output: Output, tally: Tally, report: Reporter, until: str) -> set[Future]:
    """Write out the batches that finished (all of them with ALL_COMPLETED), once their results are stored;
    return the rest."""
    done, rest = wait(pending, return_when=until)
    for future in done:
        entries, written = future.result()
        for write in written:
            write.result()  # a failed write ends the run (as S3 being unreachable would)
        for entry, model, reused in entries:
            output.write(entry, model)
            tally.add(entry, model, reused)
        report.done(len(entries))
    return rest


def _reusable(s3, bucket: str, results_prefix: str, key: str, image: str, resume: Resume | None) -> dict | None:
    """The stored entry of ``key`` when it was made by the current model from the bytes listed now (ETag
    ``image``; then it is not redone), else None."""
    if resume is None:
        return None
    state, stored = resume.lookup(key, image)
    if state == READ:
        document, etag = read_checked(s3, bucket, results_prefix, key)
        if (document and (document.get("model") or {}).get("sha256") == resume.model_sha
                and image and made_from(document) == image):
            resume.record(document, document["model"], etag)
            return document
    return stored


def _result_key_too_long(bucket: str, results_prefix: str, key: str) -> dict | None:
    """The error entry of a key whose result key (results prefix + key + .json) is over S3's 1024 bytes: S3
    refuses that write, and a refused write ends the run; one such key must cost only its own result."""
    from rcyc_core.result_store import result_key

    size = len(result_key(results_prefix, key).encode("utf-8", "surrogatepass"))
    if size <= S3_MAX_KEY_BYTES:
        return None
    return {"key": key, "bucket": bucket, "error": "ResultKeyTooLong",
            "message": f"its result key would be {size} bytes, over S3's {S3_MAX_KEY_BYTES} (a shorter --results-prefix may fit)"}


def _say_lost(writer: Writer, failure: BaseException | None) -> None:
    """Results classified but not stored are named: in the error that ends the run, or as one of their own."""
    lost = writer.lost_message()
    if lost is None:
        return
    if isinstance(failure, RcycError):
        failure.args = (f"{failure.message}; {lost}", *failure.args[1:])
    elif failure is None:
        raise AwsError(lost, kind="S3Error", hint="check that the results prefix is writable, then rerun")


def _save_quietly(resume: Resume, store) -> None:
    """The index is an optimisation: failing to write it must not turn a finished run into a failed one."""
    try:
        resume.save(store)
    except Exception:
        pass


def _classify_keys(target: Target, writer: Writer, bucket: str, images: dict[str, str], tally: Tally):
    """Invoke one event for the keys of ``images`` (key -> ETag); hand its results (and lasting errors) to the
    writer; return the entries and the writes."""
    keys = list(images)
    try:
        answer = invoke(target, events.make_event(bucket, keys))
    except FunctionError as exc:
        # each record carries the event's error, cut as invoke-local cuts it: the message may be the function's
        # own errorMessage, megabytes over many lines
        message = shown(exc.message)[:300]
        return [({"key": key, "bucket": bucket, "error": exc.kind, "message": message}, None, False) for key in keys], []
    tally.invoked(answer)
    response, model = answer.response, answer.response.get("model")
    out, storable = [], []
    # Only entries for keys this event named: an answer about any other key is neither stored nor counted.
    results, errors, skipped = (_named(response.get(part), images, part) for part in ("results", "errors", "skipped"))
    answered = {e["key"] for e in results + errors + skipped}
    for entry in results + errors:
        entry = {k: v for k, v in entry.items() if k != "record"}
        # An error about the image's own bytes is stored as its result (a rerun would only repeat it); anything
        # else (S3 unreachable, throttled, the function crashed) is retried by the next run.
        if "label" in entry or entry.get("error") in IMAGE_ERRORS:
            storable.append(entry)
        out.append((entry, model, False))
    for entry in skipped:
        out.append(({"key": entry.get("key"), "bucket": bucket, "error": "Skipped", "message": entry.get("reason")}, model, False))
    for key in keys:
        if key not in answered:
            out.append(({"key": key, "bucket": bucket, "error": "NoAnswer", "message": "the function returned no entry"}, model, False))
    return out, writer.submit(storable, model, images) if storable else []


# The fields of each entry the run reads, as the result contract types them (rcyc_core.results): an entry
# with a label that is a list, or an error that is an object, would end the whole run where it is counted.
_TEXT = (str, type(None))
_ENTRY_FIELDS = {"results": {"label": str, "confidence": (int, float), "scores": dict, "bucket": _TEXT},
                 "errors": {"error": str, "message": str, "bucket": _TEXT},
                 "skipped": {"reason": str, "bucket": _TEXT}}


def _named(entries: object, images: dict[str, str], part: str) -> list[dict]:
    """The entries of ``part`` about keys this event named, and typed as the contract has them (any other is
    no answer for its key)."""
    if not isinstance(entries, list):
        return []
    fields = _ENTRY_FIELDS[part]
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("key"), str) and e["key"] in images
            and all(isinstance(e.get(name), kinds) for name, kinds in fields.items())]
