import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcyc_core import events
from rcyc_core.errors import EventError
from tests.conftest import FIXTURES, examples


def s3_record(key, bucket="b", name="ObjectCreated:Put", source="aws:s3"):
    return {"eventSource": source, "eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_seed_short_form_is_an_object_record():
    event = json.loads((FIXTURES / "events" / "seed.json").read_text())
    [record] = events.parse(event)
    assert isinstance(record, events.ObjectRecord)
    assert record.bucket == "recycle-able-image"
    assert record.key == "images/soda_cans_0.jpg"


def test_keys_are_url_decoded():
    [record] = events.parse({"Records": [s3_record("my+photos/can%2B1+%C3%A9.jpg")]})
    assert record.key == "my photos/can+1 é.jpg"


def test_other_events_are_skipped_with_a_reason():
    parsed = events.parse({"Records": [s3_record("a.jpg", name="ObjectRemoved:Delete"), s3_record("b.jpg", source="aws:sqs")]})
    assert [type(r) for r in parsed] == [events.SkippedRecord, events.SkippedRecord]
    assert "ObjectRemoved:Delete" in parsed[0].reason and "aws:sqs" in parsed[1].reason


@pytest.mark.parametrize("record", [None, 5, {}, {"s3": {}}, {"s3": {"bucket": {"name": "b"}}},
                                    {"s3": {"bucket": {"name": 3}, "object": {"key": "k"}}},
                                    {"s3": {"bucket": {"name": "b"}, "object": {"key": ""}}}])
def test_malformed_records_are_bad_records(record):
    [parsed] = events.parse({"Records": [record]})
    assert isinstance(parsed, events.BadRecord)


def test_overlong_key_is_bad():
    [parsed] = events.parse({"Records": [s3_record("k" * 1025)]})
    assert isinstance(parsed, events.BadRecord)


@pytest.mark.parametrize("event", [[], "x", None, {}, {"Records": {}}, {"Records": "a"}])
def test_top_level_problems_raise(event):
    with pytest.raises(EventError):
        events.parse(event)


def test_make_event_round_trips_keys():
    keys = ["images/a b.jpg", "images/c+d.jpg", "x/ü.png"]
    parsed = events.parse(events.make_event("bkt", keys))
    assert [r.key for r in parsed] == keys


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=examples(300))
@given(st.lists(st.one_of(json_values, st.builds(s3_record, st.text(max_size=300), st.text(max_size=20))), max_size=30))
def test_every_record_is_classified_exactly_once(records):
    parsed = events.parse({"Records": records})
    assert [r.index for r in parsed] == list(range(len(records)))
    for record in parsed:
        assert isinstance(record, (events.ObjectRecord, events.SkippedRecord, events.BadRecord))
