"""classify's resume index: a rerun skips done keys from one listing (no request per key), and trusts an
index entry only while the result's ETag is the one it names."""

from __future__ import annotations

import json

import boto3
import pytest

from rcyc_cli.classify.resume import DONE, INDEX_FILES_BESIDE, INDEX_FOLDER, NEW, READ, Resume
from rcyc_core.result_store import read_result, write_result

BUCKET = "archive"
MODEL = {"name": "m", "version": "1", "sha256": "a" * 64}
IMAGE = "e0"  # the ETag of the image bytes each result here was made from


@pytest.fixture
def s3(moto_in_process):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def count_gets(client) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-call.s3.GetObject", lambda params, **_: seen.append(params["url_path"]))
    return seen


def entry(key: str, label: str = "boxes") -> dict:
    return {"key": key, "bucket": BUCKET, "label": label, "confidence": 0.9, "scores": {label: 0.9},
            "object": {"etag": IMAGE}}


def first_run(s3, keys: list[str]) -> Resume:
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    for key in keys:
        resume.record(entry(key), MODEL, write_result(s3, BUCKET, "results/", entry(key), MODEL))
    resume.save()
    return resume


def test_a_rerun_knows_every_done_key_from_the_listing_without_reading_any_result(s3):
    keys = [f"photos/{n}.jpg" for n in range(50)]
    first_run(s3, keys)
    gets = count_gets(s3)
    again = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert len(gets) == 1  # the one index file, not 50 results
    for key in keys:
        state, stored = again.lookup(key, IMAGE)
        assert state == DONE and stored["label"] == "boxes" and stored["key"] == key and stored["model"] == MODEL
    assert again.lookup("photos/new.jpg", IMAGE) == (NEW, None)
    again.save()  # nothing changed: no new index file
    names = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{INDEX_FOLDER}")["Contents"]]
    assert len(names) == 1


def test_a_changed_result_or_another_models_index_is_not_trusted(s3):
    keys = ["photos/a.jpg", "photos/b.jpg"]
    first_run(s3, keys)
    write_result(s3, BUCKET, "results/", entry("photos/a.jpg", "glass_bottles"), {**MODEL, "sha256": "b" * 64})
    again = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert again.lookup("photos/a.jpg", IMAGE) == (READ, None)  # its ETag moved: read it and check its model
    assert again.lookup("photos/b.jpg", IMAGE)[0] == DONE
    other = Resume(s3, BUCKET, "results/", "photos/", "c" * 64).load()
    assert other.lookup("photos/b.jpg", IMAGE) == (READ, None)


def test_runs_merge_their_indexes_into_one_and_keep_keys_outside_their_prefix(s3):
    first_run(s3, ["photos/a.jpg"])
    elsewhere = Resume(s3, BUCKET, "results/", "other/", MODEL["sha256"]).load()
    elsewhere.record(entry("other/x.jpg"), MODEL, write_result(s3, BUCKET, "results/", entry("other/x.jpg"), MODEL))
    elsewhere.save()
    merged = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    merged.save()  # two files read: one written, both removed
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{INDEX_FOLDER}")["Contents"]
    assert len(listing) == 1
    index = json.loads(s3.get_object(Bucket=BUCKET, Key=listing[0]["Key"])["Body"].read())
    assert sorted(index["results"]) == ["other/x.jpg", "photos/a.jpg"]
    assert read_result(s3, BUCKET, "results/", "other/x.jpg")["label"] == "boxes"


def test_a_damaged_index_file_is_ignored(s3):
    s3.put_object(Bucket=BUCKET, Key=f"results/{INDEX_FOLDER}{MODEL['sha256']}/bad.json", Body=b"{not json")
    write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert resume.lookup("photos/a.jpg", IMAGE) == (READ, None)


def count_lists(client) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: seen.append(params["query_string"]["prefix"]))
    return seen


def test_a_forced_run_reads_no_result_nor_index_and_the_next_run_merges_its_index_with_the_old(s3):
    first_run(s3, ["photos/a.jpg", "other/b.jpg"])
    lists, gets = count_lists(s3), count_gets(s3)
    forced = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load(list_results=False)
    assert lists == [f"results/{INDEX_FOLDER}{MODEL['sha256']}/"] and gets == []  # the index folder's names only
    forced.record(entry("photos/c.jpg"), MODEL, write_result(s3, BUCKET, "results/", entry("photos/c.jpg"), MODEL))
    forced.save()
    folder = f"results/{INDEX_FOLDER}{MODEL['sha256']}/"
    assert len(s3.list_objects_v2(Bucket=BUCKET, Prefix=folder)["Contents"]) == 2  # its own file beside the old
    again = Resume(s3, BUCKET, "results/", "", MODEL["sha256"]).load()
    for key in ("other/b.jpg", "photos/a.jpg", "photos/c.jpg"):
        assert again.lookup(key, IMAGE)[0] == DONE, key
    again.save()  # merged into one file
    assert len(s3.list_objects_v2(Bucket=BUCKET, Prefix=folder)["Contents"]) == 1


def test_forced_runs_merge_the_index_once_it_has_several_files(s3):
    first_run(s3, ["photos/a.jpg"])
    for n in range(6):
        forced = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load(list_results=False)
        key = f"photos/f{n}.jpg"
        forced.record(entry(key), MODEL, write_result(s3, BUCKET, "results/", entry(key), MODEL))
        forced.save()
        files = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{INDEX_FOLDER}{MODEL['sha256']}/")["Contents"]
        assert len(files) <= INDEX_FILES_BESIDE  # never more than a few, however many forced runs
    again = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert all(again.lookup(key, IMAGE)[0] == DONE for key in ["photos/a.jpg"] + [f"photos/f{n}.jpg" for n in range(6)])


def test_listing_timestamps_parse_to_the_same_datetimes_as_botocores_own(s3):
    from rcyc_cli.classify.listing import lean_timestamps

    s3.put_object(Bucket=BUCKET, Key="photos/x.jpg", Body=b"x")
    plain = boto3.client("s3", region_name="us-east-1")
    lean_timestamps(s3)
    ours = s3.list_objects_v2(Bucket=BUCKET)["Contents"][0]["LastModified"]
    theirs = plain.list_objects_v2(Bucket=BUCKET)["Contents"][0]["LastModified"]
    assert ours == theirs and ours.utcoffset() is not None
    assert s3.head_object(Bucket=BUCKET, Key="photos/x.jpg")["LastModified"] == theirs  # an HTTP date header too


def test_a_local_run_writes_its_index_through_the_stacks_results_route_and_s3_when_that_fails(s3, monkeypatch):
    """The local stack's results route stores the index without an S3 client (making one cost a local run about
    0.2 s of CPU at its very end); a route that fails, or an index too large for its one request, is S3's."""
    from rcyc_cli.local.stack.protocol import SYNC_PAYLOAD_LIMIT

    routed, puts = [], count_puts(s3)

    def store(bucket, items):
        routed.append((bucket, [(key, json.loads(body), metadata) for key, body, metadata in items]))
        return ["etag"] * len(items)

    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    resume.record(entry("photos/a.jpg"), MODEL, write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL))
    puts.clear()
    resume.save(store)
    [(bucket, [(key, document, metadata)])] = routed
    assert bucket == BUCKET and key.startswith(f"results/{INDEX_FOLDER}{MODEL['sha256']}/") and key.endswith(".json")
    assert document["results"]["photos/a.jpg"][1]["label"] == "boxes" and metadata == {} and puts == []

    def refused(bucket, items):
        raise RuntimeError("the route refused it")

    for failing in (refused, store):
        resume.record(entry("photos/b.jpg"), MODEL, "e1")
        if failing is store:  # an index the route could not take in one request: S3's, the route not asked
            monkeypatch.setattr("rcyc_cli.local.stack.protocol.SYNC_PAYLOAD_LIMIT", 100)
        routed.clear()
        resume.save(failing)
        assert routed == [] and len(puts) == 1 and puts.pop().endswith(".json")
    assert SYNC_PAYLOAD_LIMIT > 100


def count_puts(client) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-call.s3.PutObject", lambda params, **_: seen.append(params["url_path"]))
    return seen
