"""A run's keys go out as events that fill every instance each round: as few events of up to --batch-size as
there can be, a whole number of rounds over the instances, sizes differing by one at most (a last short event
left one instance waiting while the other classified a whole event more)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcyc_cli.local.emulator.pool import event_sizes, run_keys


@given(st.integers(0, 5000), st.integers(1, 1000), st.integers(1, 64))
def test_every_key_once_in_events_of_at_most_the_batch_size_in_whole_rounds(count, batch_size, concurrency):
    sizes = event_sizes(count, batch_size, concurrency)
    assert sum(sizes) == count and all(0 < size <= batch_size for size in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1
    fewest = -(-count // batch_size)
    assert fewest <= len(sizes) <= max(fewest, min(count, -(-fewest // concurrency) * concurrency))
    if len(sizes) >= concurrency:
        assert len(sizes) % concurrency == 0 or len(sizes) == count


@pytest.mark.parametrize("count, batch_size, concurrency, sizes", [
    (72, 16, 2, [12] * 6),  # was 16+16+16+16+8: 40 records on one instance, 32 on the other
    (128, 16, 2, [16] * 8),
    (17, 16, 2, [9, 8]),
    (3, 16, 8, [1, 1, 1]),  # fewer keys than instances: one each
    (40, 16, 1, [14, 13, 13]),
    (0, 16, 2, []),
])
def test_known_spreads(count, batch_size, concurrency, sizes):
    assert event_sizes(count, batch_size, concurrency) == sizes


def test_run_keys_numbers_records_across_uneven_events():
    from rcyc_cli.invocation import Invocation, Report

    seen = []

    def invoke(event):
        keys = [r["s3"]["object"]["key"] for r in event["Records"]]
        seen.append(len(keys))
        results = [{"record": i, "bucket": "b", "key": k, "label": "boxes"} for i, k in enumerate(keys)]
        return Invocation({"results": results, "errors": [], "skipped": [], "model": None}, Report(), 1.0)

    keys = [f"k{i}" for i in range(50)]
    run = run_keys(invoke, "b", keys, batch_size=8, concurrency=2)
    assert sorted(seen) == [6] * 6 + [7] * 2
    assert [(r["record"], r["key"]) for r in run.response["results"]] == list(enumerate(keys))
