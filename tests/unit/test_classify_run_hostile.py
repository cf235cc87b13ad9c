"""classify's run against hostile S3 states, with moto's S3 and a stand-in Lambda client (the function's
contract, not its model): a result answers the bytes it was made from, and a result that could not be
stored is said, never lost in silence."""

from __future__ import annotations

import io
import json
import re

import boto3
import pytest
from rcyc_core.errors import RcycError

from rcyc_cli.classify.run import ClassifyOptions, classify
from rcyc_cli.classify.target import Target
from rcyc_cli.cloud.store import POINTER_KEY

BUCKET = "archive"
MODEL = {"name": "m", "version": "1", "sha256": "a" * 64}


class FakeLambda:
    """Answers every record with label boxes, and counts the keys it was asked about."""

    def __init__(self):
        self.asked: list[str] = []

    def invoke(self, FunctionName, InvocationType, LogType, Payload):
        keys = [r["s3"]["object"]["key"] for r in json.loads(Payload)["Records"]]
        self.asked += keys
        results = [{"record": n, "key": k, "bucket": BUCKET, "label": "boxes", "confidence": 0.9,
                    "scores": {"boxes": 0.9}} for n, k in enumerate(keys)]
        return {"Payload": io.BytesIO(json.dumps({"results": results, "errors": [], "skipped": [], "model": MODEL}).encode())}


@pytest.fixture
def s3(moto_in_process):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps({"manifest": "m.json", **MODEL}).encode())
    return client


def run(s3, lam: FakeLambda, **options) -> dict:
    target = Target("aws", lam, "f", "aws", 1024, "x86_64", 60, concurrency_limit=None, model_bucket=BUCKET)
    return classify(ClassifyOptions(uri=f"s3://{BUCKET}/photos/", concurrency=2, batch_size=4, **options), target, s3)


def test_an_image_replaced_under_the_same_key_is_classified_again(s3):
    for n in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n}.jpg", Body=b"old %d" % n)
    run(s3, FakeLambda())
    s3.put_object(Bucket=BUCKET, Key="photos/2.jpg", Body=b"a different photo")
    again = FakeLambda()
    summary = run(s3, again)
    assert again.asked == ["photos/2.jpg"] and summary["done_before"] == 5
    third = FakeLambda()
    run(s3, third)  # and the new result is then done, from the index
    assert third.asked == []


def test_a_result_deleted_after_the_index_or_made_by_another_model_is_not_done(s3):
    from rcyc_core.result_store import write_result

    for n in range(4):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n}.jpg", Body=b"photo %d" % n)
    run(s3, FakeLambda())
    s3.delete_object(Bucket=BUCKET, Key="results/photos/0.jpg.json")
    other = {**MODEL, "sha256": "b" * 64}
    etag = s3.head_object(Bucket=BUCKET, Key="photos/1.jpg")["ETag"].strip('"')
    write_result(s3, BUCKET, "results/", {"key": "photos/1.jpg", "bucket": BUCKET, "label": "boxes", "confidence": 0.9,
                                          "object": {"etag": etag}}, other)
    again = FakeLambda()
    run(s3, again)
    assert sorted(again.asked) == ["photos/0.jpg", "photos/1.jpg"]


def refuse_puts_after(s3, allowed: int):
    from botocore.exceptions import ClientError

    seen = []

    def refuse(params, **_):
        if "/results/photos/" in params["url_path"]:
            seen.append(1)
            if len(seen) > allowed:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    s3.meta.events.register("before-call.s3.PutObject", refuse)
    return refuse


def test_s3_refusing_writes_midway_fails_the_run_and_says_how_many_results_were_lost(s3):
    for n in range(40):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n:02d}.jpg", Body=b"photo %d" % n)
    refuse = refuse_puts_after(s3, 10)
    with pytest.raises(RcycError) as failed:
        run(s3, FakeLambda())
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix="results/photos/").get("KeyCount", 0)
    assert stored == 10
    said = re.search(r"(\d+) classified results were not stored \(photos/", failed.value.message)
    assert said and 1 <= int(said[1]) <= 40 - stored  # the rest were never invoked
    s3.meta.events.unregister("before-call.s3.PutObject", refuse)
    again = FakeLambda()
    run(s3, again)  # a rerun classifies exactly what was lost
    assert len(again.asked) == 40 - stored


def test_ctrl_c_with_writes_queued_stores_every_result_already_classified(s3):
    import _thread
    import time

    for n in range(60):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n:02d}.jpg", Body=b"photo %d" % n)
    s3.meta.events.register("before-call.s3.PutObject", lambda **_: time.sleep(0.02))  # writes queue up

    class Interrupting(FakeLambda):
        def invoke(self, **kwargs):
            answer = super().invoke(**kwargs)
            if len(self.asked) == 24:
                _thread.interrupt_main()  # Ctrl-C, while the writes of earlier events still wait
            return answer

    lam = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        run(s3, lam)
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/photos/").get("Contents", [])}
    assert stored == {f"results/{key}.json" for key in lam.asked}


@pytest.mark.parametrize("prefix, results_prefix", [("photos/", "photos/"), ("photos/2024/", "photos/")])
def test_a_results_prefix_that_holds_the_input_prefix_is_refused_not_an_empty_success(s3, prefix, results_prefix):
    from rcyc_core.errors import InputError

    s3.put_object(Bucket=BUCKET, Key=f"{prefix}a.jpg", Body=b"photo")
    target = Target("aws", FakeLambda(), "f", "aws", 1024, "x86_64", 60, model_bucket=BUCKET)
    with pytest.raises(InputError, match="results prefix"):
        classify(ClassifyOptions(uri=f"s3://{BUCKET}/{prefix}", results_prefix=results_prefix), target, s3)


def test_results_overwritten_by_another_models_run_are_redone_when_the_first_model_returns(s3):
    for n in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n}.jpg", Body=b"photo %d" % n)
    run(s3, FakeLambda())  # model a: its index vouches for five results

    other = {**MODEL, "sha256": "b" * 64}

    class OtherModel(FakeLambda):
        def invoke(self, **kwargs):
            answer = json.loads(super().invoke(**kwargs)["Payload"].read())
            return {"Payload": io.BytesIO(json.dumps({**answer, "model": other}).encode())}

    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps({"manifest": "m.json", **other}).encode())
    second = OtherModel()
    run(s3, second, limit=3)  # model b overwrites three results
    assert len(second.asked) == 3
    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=json.dumps({"manifest": "m.json", **MODEL}).encode())
    back = FakeLambda()
    assert run(s3, back)["done_before"] == 2 and sorted(back.asked) == sorted(second.asked)


def test_an_answer_about_keys_the_event_did_not_name_is_neither_stored_nor_counted(s3):
    for n in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n}.jpg", Body=b"photo %d" % n)

    class Hostile(FakeLambda):
        def invoke(self, **kwargs):
            answer = json.loads(super().invoke(**kwargs)["Payload"].read())
            answer["results"] += [{"key": "models/current", "bucket": BUCKET, "label": "boxes", "confidence": 1.0},
                                  "not an entry", {"no": "key"}]
            answer["errors"] = {"not": "a list"}
            return {"Payload": io.BytesIO(json.dumps(answer).encode())}

    summary = run(s3, Hostile())
    assert summary["classified"] == 3 and summary["errors"] == {}
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")["Contents"]]
    assert not any(k.startswith("results/models/") for k in stored)


def test_keys_beyond_the_first_short_page_are_each_classified_once_and_the_run_invokes_before_the_listing_ends(s3):
    for n in range(25):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n:02d}.jpg", Body=b"photo %d" % n)
    s3.put_object(Bucket=BUCKET, Key="photos/notes.txt", Body=b"not an image")
    events: list[str] = []
    s3.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: events.append(
        f"list {params['query_string'].get('max-keys')}" if params["query_string"].get("prefix") == "photos/" else "other"))

    class Recording(FakeLambda):
        def invoke(self, **kwargs):
            events.append("invoke")
            return super().invoke(**kwargs)

    lam = Recording()
    summary = run(s3, lam, force=True)
    assert sorted(lam.asked) == [f"photos/{n:02d}.jpg" for n in range(25)]  # every image once, never the .txt
    assert summary["images"] == 25 and summary["not_images"] == 1 and summary["classified"] == 25
    lists = [e for e in events if e.startswith("list")]
    assert lists[0] == "list 16" and lists[1:] == ["list 1000"]  # 2 x concurrency 2 x batch 4 keys first
    assert events.index("invoke") < events.index("list 1000")  # the first events went out before the rest was listed


def test_an_endpoint_repeating_its_continuation_token_ends_the_listing_with_an_error():
    from rcyc_cli.classify.listing import Counts, iter_images

    class Looping:
        def list_objects_v2(self, **request):
            return {"Contents": [{"Key": "photos/a.jpg", "Size": 3, "ETag": '"e"'}], "IsTruncated": True,
                    "NextContinuationToken": "same"}

    with pytest.raises(RcycError, match="repeated its continuation token"):
        list(iter_images(Looping(), BUCKET, "photos/", "results/", Counts()))
