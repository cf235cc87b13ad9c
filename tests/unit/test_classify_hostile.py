"""Hostile inputs to classify's resume index and results: an index is a hint a rerun checks, never a
source of entries it cannot vouch for, and never a way to stop a run."""

from __future__ import annotations

import json

import pytest
from rcyc_core.result_store import write_result
from test_classify_resume import BUCKET, IMAGE, MODEL, entry, s3

from rcyc_cli.classify.resume import DONE, INDEX_FOLDER, READ, Resume

FOLDER = f"results/{INDEX_FOLDER}{MODEL['sha256']}/"


def plant(s3, body: bytes, name: str = "planted.json") -> None:
    s3.put_object(Bucket=BUCKET, Key=FOLDER + name, Body=body)


def index_of(results: dict) -> bytes:
    return json.dumps({"model_sha256": MODEL["sha256"], "model": MODEL, "results": results}).encode()


def test_a_deeply_nested_index_is_ignored_not_a_crash(s3):
    write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    plant(s3, b"[" * 200_000 + b"]" * 200_000)
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert resume.lookup("photos/a.jpg", IMAGE) == (READ, None)


def test_an_index_larger_than_any_real_one_is_not_read(s3):
    etag = write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    filler = {f"photos/x{n}.jpg": ["0", {"label": "boxes"}] for n in range(20)}
    body = index_of({"photos/a.jpg": [etag, {"label": "boxes"}], **filler})
    plant(s3, body + b" " * (65 * 1024 * 1024))
    gets: list[str] = []
    s3.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["url_path"]))
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert gets == [] and resume.lookup("photos/a.jpg", IMAGE) == (READ, None)


def test_an_index_entry_cannot_rename_its_key_or_bucket(s3):
    etag = write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    plant(s3, index_of({"photos/a.jpg": [etag, {"label": "boxes", "confidence": 0.9, "key": "photos/z.jpg", "object": {"etag": IMAGE},
                                                "bucket": "elsewhere"}]}))
    state, stored = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load().lookup("photos/a.jpg", IMAGE)
    assert state == DONE and stored["key"] == "photos/a.jpg" and stored["bucket"] == BUCKET


@pytest.mark.parametrize("bad", [{"label": {"not": "hashable"}}, {"label": "not_a_class", "confidence": 0.5},
                                 {"label": "boxes", "confidence": "high"}, {"error": ["x"]}, {}])
def test_an_index_entry_that_is_not_a_result_is_not_trusted(s3, bad):
    etag = write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    plant(s3, index_of({"photos/a.jpg": [etag, bad]}))
    assert Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load().lookup("photos/a.jpg", IMAGE) == (READ, None)


def test_an_indexed_result_for_other_bytes_is_not_done(s3):
    etag = write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    plant(s3, index_of({"photos/a.jpg": [etag, {"label": "boxes", "confidence": 0.9, "object": {"etag": IMAGE}}]}))
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert resume.lookup("photos/a.jpg", "replaced")[0] != DONE and resume.lookup("photos/a.jpg", IMAGE)[0] == DONE


@pytest.mark.parametrize("made", ["a string", ["etag"], {"etag": 7}, None])
def test_an_index_entry_or_result_with_a_malformed_object_field_is_redone_not_a_crash(s3, made):
    hostile = {**entry("photos/a.jpg"), "object": made}
    etag = write_result(s3, BUCKET, "results/", hostile, MODEL)
    plant(s3, index_of({"photos/a.jpg": [etag, {"label": "boxes", "confidence": 0.9, "object": made}]}))
    assert Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load().lookup("photos/a.jpg", IMAGE) == ("new", None)


@pytest.mark.parametrize("model", ["a string", ["m"], {"sha256": "b" * 64, "version": "forged"}])
def test_an_index_cannot_name_another_model_for_the_entries_it_vouches_for(s3, model):
    etag = write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)
    body = json.dumps({"model_sha256": MODEL["sha256"], "model": model,
                       "results": {"photos/a.jpg": [etag, {"label": "boxes", "confidence": 0.9, "object": {"etag": IMAGE}}]}})
    plant(s3, body.encode())
    state, stored = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load().lookup("photos/a.jpg", IMAGE)
    assert state == READ and stored is None  # the result itself is read (and names its model)


def test_a_users_objects_under_the_index_folder_are_never_removed(s3):
    plant(s3, b"my notes", name="notes.txt")
    plant(s3, json.dumps({"model_sha256": "b" * 64, "results": {}}).encode(), name="theirs.json")
    s3.put_object(Bucket=BUCKET, Key=f"results/{INDEX_FOLDER}README", Body=b"mine")
    for _ in range(2):
        resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
        resume.record(entry("photos/a.jpg"), MODEL, write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL))
        resume.save()
    names = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"results/{INDEX_FOLDER}")["Contents"]}
    assert {FOLDER + "notes.txt", FOLDER + "theirs.json", f"results/{INDEX_FOLDER}README"} <= names
    assert len(names) == 4  # and one index of ours
