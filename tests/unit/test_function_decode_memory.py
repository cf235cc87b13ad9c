"""The function decodes each image in the thread that fetched it; its memory must still be what one image
at the pixel limit needs, not that times the fetching threads. Images under the limit that are small files
(a flat 36-megapixel PNG is 1 MB and takes 700 MB to decode) were decoded in eight threads: 5.6 GB in a 1 GB
function (Lambda stops it: every record of the batch is lost), and even one at a time the memory each thread
freed stayed in its own malloc arena. Large images are decoded on one thread, one at a time."""

from __future__ import annotations

import io
import threading
import time

import boto3
import pytest
from PIL import Image
from rcyc_core import function, preprocess

from rcyc_cli.cloud import buckets
from tests.unit.test_function import BUCKET, make_function, put_model

LIMIT = 2_000_000  # RCYC_MAX_PIXELS for the test: each large image has 60% of it


@pytest.fixture
def s3(moto_in_process):
    client = boto3.client("s3", region_name="us-east-1")
    buckets.ensure_private_bucket(client, BUCKET, tls_only=False)
    return client


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (20, 200, 40, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_large_images_are_decoded_one_at_a_time_on_one_thread(s3, tmp_path, monkeypatch):
    assert 1100 * 1100 > function.LARGE_DECODE_PIXELS  # the test's images are large ones
    put_model(s3)
    for i in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"big/{i}.png", Body=png(1100))
    s3.put_object(Bucket=BUCKET, Key="big/bomb.png", Body=png(1500))  # over the limit: refused, never decoded
    s3.put_object(Bucket=BUCKET, Key="big/small.png", Body=png(300))
    held, peak, threads, lock = [0], [0], set(), threading.Lock()
    resize = preprocess.to_input

    def watched(image, spec):  # called while the decoded image is alive: count its pixels until resized
        pixels = image.size[0] * image.size[1]
        with lock:
            held[0] += pixels
            peak[0] = max(peak[0], held[0])
            if pixels > function.LARGE_DECODE_PIXELS:
                threads.add(threading.get_ident())
        try:
            time.sleep(0.1)  # lets the other fetching threads reach their own decode meanwhile
            return resize(image, spec)
        finally:
            with lock:
                held[0] -= pixels

    monkeypatch.setattr(preprocess, "to_input", watched)
    keys = [f"big/{i}.png" for i in range(6)] + ["big/bomb.png", "big/small.png"]
    records = [{"eventSource": "aws:s3", "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}} for key in keys]
    instance = make_function(s3, tmp_path, max_pixels=LIMIT)
    response = instance.handle({"Records": records})

    assert sorted(r["record"] for r in response["results"]) == [0, 1, 2, 3, 4, 5, 7]
    assert [(e["record"], e["error"]) for e in response["errors"]] == [(6, "ImageTooLarge")]
    assert len(threads) == 1  # one thread's arena holds what large decodes free
    assert 0 < peak[0] <= LIMIT
    again = instance.handle({"Records": records[:2]})  # the warm instance goes on, on the same thread
    assert len(again["results"]) == 2 and len(threads) == 1


def test_a_photo_is_not_large_at_its_draft_scale():
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (90, 90, 90)).save(buffer, format="JPEG")
    pixels = preprocess.decoded_pixels(buffer.getvalue(), 40_000_000, (448, 448))
    assert 0 < pixels <= function.LARGE_DECODE_PIXELS
    assert preprocess.decoded_pixels(b"not an image", 40_000_000, (448, 448)) == 0
