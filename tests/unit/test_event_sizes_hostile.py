"""Hostile cases for how a run's keys go out as events (``event_sizes`` / ``run_keys``) and for the callers
that feed them counts: the warm stack's run route (a JSON payload), invoke_images' status line, and the
client's wait for a warm run. No emulator: the function is a fake that answers each event at once."""

from __future__ import annotations

import threading
from urllib.parse import unquote_plus

import pytest

from rcyc_cli.invocation import Invocation, Report
from rcyc_cli.local.emulator.pool import event_sizes, run_keys
from rcyc_core.errors import FunctionError

ODD = [0, -1, -(10 ** 30), 1, 2, 10 ** 30, True, False]


def keys_of(event: dict) -> list[str]:
    return [unquote_plus(record["s3"]["object"]["key"]) for record in event["Records"]]


def answering(fail=lambda keys: False, seen=None):
    """A function: each record classified, or the whole event failed when ``fail(keys)``."""
    lock = threading.Lock()

    def invoke(event: dict) -> Invocation:
        keys = keys_of(event)
        if seen is not None:
            with lock:
                seen.append(keys)
        if fail(keys):
            raise FunctionError("x" * 5000, kind="Runtime.ExitError")
        results = [{"record": i, "bucket": "b", "key": k, "label": "boxes"} for i, k in enumerate(keys) if not k.startswith("skip")]
        skipped = [{"record": i, "bucket": "b", "key": k, "reason": "not an image"} for i, k in enumerate(keys) if k.startswith("skip")]
        return Invocation({"results": results, "errors": [], "skipped": skipped, "model": {"sha256": "m"}}, Report(), 1.0)

    return invoke


@pytest.mark.parametrize("count", [0, 1, 2, 7, 100])
@pytest.mark.parametrize("batch_size", ODD)
@pytest.mark.parametrize("concurrency", ODD)
def test_odd_batch_sizes_and_concurrencies_still_send_every_key_once_in_non_empty_events(count, batch_size, concurrency):
    sizes = event_sizes(count, batch_size, concurrency)
    assert sum(sizes) == count and all(type(size) is int and size >= 1 for size in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1
    if isinstance(batch_size, int) and batch_size >= 1:
        assert all(size <= batch_size for size in sizes)


@pytest.mark.parametrize("count", [-1, -(10 ** 6)])
def test_a_negative_count_is_no_events(count):
    assert event_sizes(count, 16, 2) == []


def test_a_million_keys_in_events_of_one_over_64_instances_is_one_event_each():
    sizes = event_sizes(1_000_000, 1, 64)
    assert len(sizes) == 1_000_000 and set(sizes) == {1}


@pytest.mark.parametrize("count, batch_size, concurrency", [
    (50, 8, 2), (17, 16, 2), (73, 16, 8), (5, 2, 2), (9, 1, 4), (100, 7, 3), (3, 100, 8)])
def test_whole_events_that_fail_number_their_records_by_the_running_sum(count, batch_size, concurrency):
    """Uneven events, some failing as a whole: every key once, each record its index in the run, failed
    ones as errors that carry the event's message cut, the others' results and skips in order."""
    keys = [("skip" if i % 5 == 4 else "k") + str(i) for i in range(count)]
    seen: list[list[str]] = []
    failing = {keys[i] for i in range(0, count, 3)}  # an event holding one of these fails as a whole
    run = run_keys(answering(lambda ks: bool(failing & set(ks)) and len(seen) > 1, seen), "b", keys,
                   batch_size=batch_size, concurrency=concurrency)
    response = run.response
    entries = response["results"] + response["errors"] + response["skipped"]
    assert sorted((e["record"], e["key"]) for e in entries) == list(enumerate(keys))
    for name in ("results", "errors", "skipped"):
        assert [e["record"] for e in response[name]] == sorted(e["record"] for e in response[name])
    assert all(len(e["message"]) <= 300 for e in response["errors"])
    assert sorted(len(ks) for ks in seen) == sorted(event_sizes(count, batch_size, concurrency))


def test_the_only_event_failing_is_the_runs_failure_not_an_error_each():
    with pytest.raises(FunctionError):
        run_keys(answering(lambda ks: True), "b", ["a", "b", "c"], batch_size=16, concurrency=1)


def test_every_event_failing_gives_every_record_an_error_and_no_result():
    keys = [f"k{i}" for i in range(11)]
    run = run_keys(answering(lambda ks: True), "b", keys, batch_size=3, concurrency=2)
    assert [(e["record"], e["key"], e["error"]) for e in run.response["errors"]] == [
        (i, k, "Runtime.ExitError") for i, k in enumerate(keys)]
    assert run.response["results"] == [] and run.invocations == []


def test_an_interrupt_mid_run_ends_it_and_posts_no_more_events():
    """Ctrl-C reaching the run while one event is answered: run_keys raises it, and the events not yet
    begun are never posted (the one in flight ends when the caller stops the instances)."""
    posted, release = [], threading.Event()

    def invoke(event: dict) -> Invocation:
        posted.append(keys_of(event))
        if len(posted) == 3:
            raise KeyboardInterrupt
        if len(posted) > 3:
            release.wait(60)  # one event may already be in flight: held until the run has raised
        return answering()(event)

    keys = [f"k{i}" for i in range(40)]
    try:
        with pytest.raises(KeyboardInterrupt):
            run_keys(invoke, "b", keys, batch_size=1, concurrency=1)
    finally:
        release.set()
    assert 3 <= len(posted) <= 4 < len(keys)


def test_a_progress_count_for_every_key_even_of_failed_events():
    done: list[int] = []
    lock = threading.Lock()

    def on_done(n: int) -> None:
        with lock:
            done.append(n)

    keys = [f"k{i}" for i in range(23)]
    run_keys(answering(lambda ks: "k4" in ks), "b", keys, batch_size=4, concurrency=3, on_done=on_done)
    assert sum(done) == 23 and sorted(done) == sorted(event_sizes(23, 4, 3))


@pytest.mark.parametrize("count", [0, 1, 5, 40])
@pytest.mark.parametrize("concurrency, batch_size", [(0, 16), (1, 16), (1, 0), (2, 0), (2, -3), (3, 1), (8, 1000), (64, 16)])
def test_the_status_line_names_as_many_events_as_are_posted(count, concurrency, batch_size):
    from rcyc_cli.local.session import invoke_images
    from rcyc_cli.reporting import Reporter, plural

    said, seen = [], []
    keys = [f"runs/p/images/{i}.jpg" for i in range(count)]
    invoke_images(answering(seen=seen), "b", keys, "runs/p/", None, concurrency, batch_size,
                  Reporter(status=said.append))
    assert f"{plural(len(seen), 'event')}, concurrency {concurrency}" in said[-1]
    assert sorted(k for ks in seen for k in ks) == sorted(keys)


class FakeS3:
    def __init__(self):
        self.put, self.deleted = [], []

    def put_objects(self, bucket, pairs):
        self.put += [key for key, _ in pairs]

    def delete_prefix(self, bucket, prefix):
        self.deleted.append(prefix)


class FakePool:
    def __init__(self, size: int):
        self.instances = [object()] * size
        self.seen: list[list[str]] = []
        self._invoke = answering(seen=self.seen)

    def invoke(self, event):
        return self._invoke(event), None


def payload(count: int, **counts) -> dict:
    images = [{"name": f"{i}.jpg", "data": "AA==", "content_type": "image/jpeg"} for i in range(count)]
    return {"images": images, **counts}


@pytest.mark.parametrize("value", [1.5, 2.0, float("inf"), True, False, "3", [2], {"n": 2}])
@pytest.mark.parametrize("name", ["concurrency", "batch_size"])
def test_a_count_that_is_not_a_json_integer_is_refused_before_any_image_is_stored(name, value):
    from rcyc_cli.local.stack.errors import ApiError
    from rcyc_cli.local.stack.server import warm_run

    s3, pool = FakeS3(), FakePool(2)
    with pytest.raises(ApiError) as refused:
        warm_run(payload(5, **{name: value}), s3, "bucket", pool)
    assert refused.value.status == 400 and s3.put == [] and pool.seen == []


@pytest.mark.parametrize("concurrency, batch_size, instances, expected", [
    (-(10 ** 30), 16, 2, [40]),  # one instance: the whole run is one event
    (0, 0, 2, [40]),
    (10 ** 30, -5, 2, [1] * 40),  # clamped to the pool, and to events of at least one record
    (10 ** 30, 10 ** 30, 4, [10] * 4),  # at most 1000 a event, and a whole round over the pool
    (2, 16, 2, [10] * 4),
    (8, 16, 3, [14, 13, 13]),
])
def test_counts_from_the_payload_are_clamped_to_what_the_stack_can_run(concurrency, batch_size, instances, expected):
    from rcyc_cli.local.stack.server import warm_run

    s3, pool = FakeS3(), FakePool(instances)
    answer = warm_run(payload(40, concurrency=concurrency, batch_size=batch_size), s3, "bucket", pool)
    assert sorted(len(keys) for keys in pool.seen) == sorted(expected)
    assert sorted(r["record"] for r in answer["response"]["results"]) == list(range(40))
    assert s3.deleted == [answer["prefix"]]


class _State:
    def __init__(self, instances: int, timeout: int):
        from rcyc_cli.function_spec import FunctionSpec
        from rcyc_cli.local.stack.client import StackConfig

        self.config = StackConfig(function=FunctionSpec(runtime="process", timeout=timeout), instances=instances)


class _Running:
    endpoint_url = "http://127.0.0.1:1"

    def __init__(self, instances: int, timeout: int = 30):
        self.state = _State(instances, timeout)


@pytest.mark.parametrize("count, concurrency, batch_size, instances", [
    (256, 8, 16, 2), (64, 64, 1, 1), (100, 4, 10, 4), (5, 2, 16, 2), (600, 64, 16, 8)])
def test_the_client_waits_for_as_many_rounds_as_the_stack_runs(monkeypatch, count, concurrency, batch_size, instances):
    """The stack clamps the concurrency asked to its instances: a run of 256 images at -c 8 on a stack of 2
    is eight rounds of events there, and the client must wait for eight, not the two it would take at 8."""
    from rcyc_cli.local.session import Upload
    from rcyc_cli.local.stack import warm

    waited = []

    def post(url, body, timeout, patience=300.0):
        waited.append(timeout)
        return {"response": {"results": [], "errors": [], "skipped": []}, "invocations": [], "seconds": 0.0, "prefix": "p/"}

    monkeypatch.setattr(warm, "_post_run", post)
    uploads = [Upload(f"{i}.jpg", b"x", "image/jpeg", size=1) for i in range(count)]
    function_timeout = 30
    warm.run_on_stack(_Running(instances, function_timeout), uploads, None, concurrency, batch_size)
    ran_with = max(1, min(concurrency, instances))  # as warm_run clamps it
    batch = count if ran_with <= 1 else max(1, min(batch_size, 1000))  # as invoke_images makes events
    rounds = -(-len(event_sizes(count, batch, ran_with)) // ran_with)
    assert waited[0] >= rounds * function_timeout
