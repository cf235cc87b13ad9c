"""Hostile input, property-tested against the handler (moto's S3 in-process, the real inference core).

Properties: the handler never raises; every record lands in exactly one of results / errors / skipped;
the instance keeps working; nothing is written outside the function's cache directory.
"""

import io
import json
import os

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from PIL import Image

from rcyc_cli.cloud import buckets, store
from rcyc_core.config import Config
from rcyc_core.function import Function
from rcyc_core.manifest import Manifest
from tests.conftest import IMAGES, MODELS, examples

BUCKET = "hostile"
GOOD = (IMAGES / "soda_cans" / "soda_cans_0.jpg").read_bytes()
CASES = {"events": 0, "images": 0}


@pytest.fixture(scope="module")
def function(tmp_path_factory):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    workdir = tmp_path_factory.mktemp("hostile")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        buckets.ensure_private_bucket(s3, BUCKET, tls_only=False)
        store.put_model(s3, BUCKET, Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"])
        s3.put_object(Bucket=BUCKET, Key="good.jpg", Body=GOOD)
        cache = workdir / "cache"
        cwd = os.getcwd()
        os.chdir(workdir)  # anything written relative to the working directory would show up here
        try:
            yield Function(Config(model_bucket=BUCKET, cache_dir=cache, max_pixels=20_000_000), s3), s3, workdir
        finally:
            os.chdir(cwd)
            print(f"\nhostile input cases tried: {CASES}")
            assert sorted(p.name for p in workdir.iterdir()) == ["cache"]


def check(response: dict, records: int) -> None:
    entries = response["results"] + response["errors"] + response["skipped"]
    indexes = [entry["record"] for entry in entries]
    if None in indexes:  # the whole event was refused: exactly one error says so
        assert len(entries) == 1 and response["errors"][0]["error"] == "InvalidEvent"
    else:
        assert sorted(indexes) == list(range(records))
    json.dumps(response)  # always serialisable


keys = st.one_of(
    st.text(min_size=1, max_size=60),
    st.sampled_from(["../../etc/passwd", "/etc/shadow", "a/../../b.jpg", "%2e%2e%2fx", "good.jpg", "a+b%20c.jpg",
                     "k" * 1024, "ü/日本/🙂.jpg", "good.jpg%00", ""]),
    st.text(alphabet="%+/.abc0123456789", max_size=40),
)
records = st.one_of(
    st.fixed_dictionaries({"s3": st.fixed_dictionaries({"bucket": st.fixed_dictionaries({"name": st.just(BUCKET)}),
                                                        "object": st.fixed_dictionaries({"key": keys})})}),
    st.fixed_dictionaries({"eventSource": st.sampled_from(["aws:s3", "aws:sqs", "aws:sns", None, 7]),
                           "eventName": st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete", "", None, 3]),
                           "s3": st.one_of(st.none(), st.just({}), st.fixed_dictionaries(
                               {"bucket": st.one_of(st.just({"name": BUCKET}), st.just({"name": 5}), st.text(max_size=5)),
                                "object": st.one_of(st.fixed_dictionaries({"key": keys}), st.just({"key": None}), st.just([]))}))}),
    st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3),
)
events = st.one_of(
    st.fixed_dictionaries({"Records": st.lists(records, max_size=12)}),
    # Hundreds of records (mostly unusable, so the case stays cheap; good.jpg ones are classified).
    st.fixed_dictionaries({"Records": st.lists(records, min_size=100, max_size=300)}),
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.none(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.none(), max_size=3),
    st.fixed_dictionaries({"Records": st.one_of(st.none(), st.text(max_size=3), st.integers(), st.just({}))}),
)


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=list(HealthCheck))
@given(event=events)
def test_any_event(function, event):
    handler, _, _ = function
    CASES["events"] += 1
    response = handler.handle(event)
    records_in = event.get("Records") if isinstance(event, dict) else None
    check(response, len(records_in) if isinstance(records_in, list) else 0)


def _png(mode: str, size, **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG", **save)
    return buffer.getvalue()


def _gif_animated() -> bytes:
    frames = [Image.new("P", (40, 30), color) for color in (1, 50, 200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def _palette_transparent() -> bytes:
    image = Image.new("P", (32, 32), 3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=3)
    return buffer.getvalue()


def _cmyk() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (50, 40), (10, 200, 30, 5)).save(buffer, "JPEG")
    return buffer.getvalue()


BOMB = _png("1", (8000, 6000))  # 48 MP in a few kB: more pixels than the limit, refused before decoding
SPECIAL = [b"", b"<html><body>hi</body></html>", b"GIF89a", GOOD[: len(GOOD) // 3], BOMB, _png("I;16", (64, 48)),
           _gif_animated(), _palette_transparent(), _cmyk(), _png("RGBA", (1, 20000))]
image_bytes = st.one_of(st.sampled_from(SPECIAL), st.binary(max_size=3000),
                        st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD))),
                        st.builds(lambda i, b: GOOD[:i] + b + GOOD[i + len(b):], st.integers(0, len(GOOD)), st.binary(min_size=1, max_size=50)))


@settings(max_examples=examples(600), deadline=None, suppress_health_check=list(HealthCheck))
@given(data=image_bytes)
def test_any_image_bytes(function, data):
    handler, s3, _ = function
    CASES["images"] += 1
    s3.put_object(Bucket=BUCKET, Key="hostile.jpg", Body=data)
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "hostile.jpg"}}},
                         {"s3": {"bucket": {"name": BUCKET}, "object": {"key": "good.jpg"}}}]}
    response = handler.handle(event)
    check(response, 2)
    # The good record always gets its result, whatever its neighbour was.
    assert [r["key"] for r in response["results"]][-1] == "good.jpg"
    assert response["results"][-1]["label"] == "soda_cans"
    for error in response["errors"]:
        assert error["error"] in ("NotAnImage", "EmptyImage", "CorruptImage", "ImageTooLarge")


def test_instance_still_warm_and_correct_after_hostile_events(function):
    """Passes alone and in any order: it sends its own hostile events first."""
    handler, _, _ = function
    good = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "good.jpg"}}}]}
    assert handler.handle(good)["results"][0]["label"] == "soda_cans"
    warm, before = handler.store.classifier, handler.invocations
    hostile = [None, [], "x" * 10_000, {"Records": None}, {"Records": [None, 1, "r"]}, {"Records": [{"s3": {}}]},
               {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "../../etc/passwd"}}}]},
               {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "missing.jpg"}}}] * 50}]
    for event in hostile:
        response = handler.handle(event)
        assert set(response) >= {"results", "errors", "skipped", "model"}
    response = handler.handle(good)
    assert response["results"][0]["label"] == "soda_cans"
    assert handler.store.classifier is warm and handler.invocations == before + len(hostile) + 1
