"""The function decodes each image in the thread that fetched it; its memory must still be what one image
at the pixel limit needs, not that times the fetching threads: images under the limit that are small files
(a flat 36-megapixel PNG is 1 MB and decodes to 150 MB, more with alpha) would otherwise all be decoded at
once and take a 1 GB function far over its memory (Lambda stops it: every record of the batch is lost)."""

from __future__ import annotations

import io
import threading
import time

import boto3
import pytest
from PIL import Image
from rcyc_core import preprocess

from rcyc_cli.cloud import buckets
from tests.unit.test_function import BUCKET, make_function, put_model

LIMIT = 1_000_000  # RCYC_MAX_PIXELS for the test: each image has 81% of it


@pytest.fixture
def s3(moto_in_process):
    client = boto3.client("s3", region_name="us-east-1")
    buckets.ensure_private_bucket(client, BUCKET, tls_only=False)
    return client


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (20, 200, 40, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decoded_images_held_at_once_never_exceed_the_pixel_limit(s3, tmp_path, monkeypatch):
    put_model(s3)
    for i in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"big/{i}.png", Body=png(900))
    s3.put_object(Bucket=BUCKET, Key="big/bomb.png", Body=png(1100))  # over the limit: refused, never decoded
    held, peak, lock = [0], [0], threading.Lock()
    resize = preprocess.to_input

    def watched(image, spec):  # called while the decoded image is alive: count its pixels until resized
        with lock:
            held[0] += image.size[0] * image.size[1]
            peak[0] = max(peak[0], held[0])
        try:
            time.sleep(0.1)  # lets the other fetching threads reach their own decode meanwhile
            return resize(image, spec)
        finally:
            with lock:
                held[0] -= image.size[0] * image.size[1]

    monkeypatch.setattr(preprocess, "to_input", watched)
    records = [{"eventSource": "aws:s3", "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
               for key in [f"big/{i}.png" for i in range(6)] + ["big/bomb.png"]]
    response = make_function(s3, tmp_path, max_pixels=LIMIT).handle({"Records": records})

    assert sorted(r["record"] for r in response["results"]) == list(range(6))
    assert [(e["record"], e["error"]) for e in response["errors"]] == [(6, "ImageTooLarge")]
    assert 0 < peak[0] <= LIMIT


def test_a_budget_lets_small_images_through_together_and_a_large_one_alone():
    budget = preprocess.PixelBudget(100)
    with budget.hold(30), budget.hold(30), budget.hold(40):
        assert budget.in_use == 100
    with budget.hold(10**9):  # more than the limit (never decoded anyway): held as the whole budget
        assert budget.in_use == 100
    assert budget.in_use == 0
