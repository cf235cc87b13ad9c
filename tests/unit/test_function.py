"""The function's handler against moto's in-process S3 (unit level; the real emulator is in test_e2e_local)."""

import json

import boto3
import pytest

from rcyc_cli.cloud import buckets, store
from rcyc_core import events
from rcyc_core.config import Config
from rcyc_core.function import Function, handler
from rcyc_core.manifest import Manifest
from tests.conftest import IMAGES, LABELS, MODELS

BUCKET = "recycle-able-image"


@pytest.fixture
def s3(moto_in_process):
    client = boto3.client("s3", region_name="us-east-1")
    buckets.ensure_private_bucket(client, BUCKET, tls_only=False)  # moto cannot evaluate aws:SecureTransport
    return client


def put_model(s3, layout="one-vs-rest"):
    directory = MODELS[layout]
    store.put_model(s3, BUCKET, Manifest.load(directory), directory)


def make_function(s3, tmp_path, **overrides):
    config = Config(model_bucket=BUCKET, cache_dir=tmp_path / "cache", **overrides)
    return Function(config, s3)


def put(s3, key, path):
    s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())


@pytest.mark.parametrize("layout", ["one-vs-rest", "softmax"])
def test_mixed_event_keeps_every_good_record(s3, tmp_path, layout):
    put_model(s3, layout)
    put(s3, "images/boxes_0.jpg", IMAGES / "boxes" / "boxes_0.jpg")
    put(s3, "images/glass_bottles_0.jpg", IMAGES / "glass_bottles" / "glass_bottles_0.jpg")
    put(s3, "images/not_an_image.jpg", IMAGES / "bad" / "not_an_image.jpg")
    event = json.loads((IMAGES.parent / "events" / "mixed.json").read_text())

    response = make_function(s3, tmp_path).handle(event)

    assert [(r["record"], r["label"]) for r in response["results"]] == [(0, "boxes"), (4, "glass_bottles")]
    assert [(e["record"], e["error"]) for e in response["errors"]] == [(1, "NoSuchKey"), (2, "NotAnImage")]
    assert [s["record"] for s in response["skipped"]] == [3]
    assert response["model"]["name"] == Manifest.load(MODELS[layout]).name
    result = response["results"][0]
    assert list(result["scores"]) == list(LABELS)
    assert result["confidence"] == max(result["scores"].values())
    raw_shape = (5, 2) if layout == "one-vs-rest" else (5,)
    assert (len(result["raw"]), *([len(result["raw"][0])] if layout == "one-vs-rest" else [])) == raw_shape


def test_keys_with_spaces_and_slashes_stay_out_of_paths(s3, tmp_path):
    put_model(s3)
    key = "../../etc/my photos/soda can+1.jpg"
    put(s3, key, IMAGES / "soda_cans" / "soda_cans_0.jpg")
    response = make_function(s3, tmp_path).handle(events.make_event(BUCKET, [key]))
    assert response["results"][0]["key"] == key
    assert response["results"][0]["label"] == "soda_cans"
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parts[0] == "cache" for p in written)


def test_model_is_loaded_once_per_instance(s3, tmp_path, monkeypatch):
    put_model(s3)
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    function = make_function(s3, tmp_path, refresh_seconds=0)
    loads = []
    original = function.store._load
    monkeypatch.setattr(function.store, "_load", lambda *a: loads.append(a) or original(*a))
    for _ in range(3):
        assert function.handle(events.make_event(BUCKET, ["images/a.jpg"]))["results"][0]["label"] == "boxes"
    assert len(loads) == 1


def test_promoted_model_reaches_a_warm_instance(s3, tmp_path):
    put_model(s3, "one-vs-rest")
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    function = make_function(s3, tmp_path, refresh_seconds=0)
    event = events.make_event(BUCKET, ["images/a.jpg"])
    assert function.handle(event)["model"]["name"] == "fixture-psu"
    put_model(s3, "softmax")
    assert function.handle(event)["model"]["name"] == "fixture-softmax"


def test_tampered_model_is_refused_and_previous_keeps_serving(s3, tmp_path):
    put_model(s3, "one-vs-rest")
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    event = events.make_event(BUCKET, ["images/a.jpg"])

    # A fresh instance with a tampered model: clear error, no result.
    softmax = Manifest.load(MODELS["softmax"])
    published = store.publish_model(s3, BUCKET, softmax, MODELS["softmax"]).manifest
    s3.put_object(Bucket=BUCKET, Key=store.model_prefix(softmax) + published.files_prefix + "model.tflite", Body=b"not the model")
    response = make_function(s3, tmp_path / "fresh").handle(event)
    assert response["results"] == [] and response["errors"][0]["error"] == "ModelIntegrityError"

    # A warm instance that already serves a good model keeps serving it.
    put_model(s3, "one-vs-rest")
    warm = make_function(s3, tmp_path / "warm", refresh_seconds=0)
    assert warm.handle(event)["model"]["name"] == "fixture-psu"
    s3.put_object(Bucket=BUCKET, Key="models/current.json",
                  Body=json.dumps({"manifest": store.model_prefix(softmax) + "manifest.json"}).encode())
    response = warm.handle(event)
    assert response["model"]["name"] == "fixture-psu" and response["results"][0]["label"] == "boxes"


def test_missing_pointer_is_an_error_per_record(s3, tmp_path):
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    response = make_function(s3, tmp_path).handle(events.make_event(BUCKET, ["images/a.jpg", "images/b.jpg"]))
    assert [e["error"] for e in response["errors"]] == ["ModelUnavailable", "ModelUnavailable"]
    assert "rcyc upload-model" not in response["errors"][0]["message"]  # hints stay in the CLI


def test_size_limits_become_record_errors(s3, tmp_path):
    put_model(s3)
    put(s3, "images/big.jpg", IMAGES / "edge" / "large_4000x3000.jpg")
    put(s3, "images/empty.jpg", IMAGES / "bad" / "empty.jpg")
    put(s3, "images/ok.jpg", IMAGES / "soda_cans" / "soda_cans_1.jpg")
    function = make_function(s3, tmp_path, max_pixels=10_000_000)
    response = function.handle(events.make_event(BUCKET, ["images/big.jpg", "images/empty.jpg", "images/ok.jpg"]))
    assert [e["error"] for e in response["errors"]] == ["ImageTooLarge", "EmptyImage"]
    assert response["results"][0]["label"] == "soda_cans"


@pytest.mark.parametrize("event", [None, [], "text", {"Records": 3}, {}])
def test_handler_never_raises_on_bad_events(event, monkeypatch, tmp_path):
    monkeypatch.setenv("RCYC_CACHE_DIR", str(tmp_path))
    response = handler(event, None)
    assert response["results"] == [] and response["errors"][0]["error"] in ("InvalidEvent", "InternalError")


def test_results_are_written_under_the_prefix_and_never_reclassified(s3, tmp_path):
    put_model(s3)
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    function = make_function(s3, tmp_path, results_prefix="results/")
    response = function.handle(events.make_event(BUCKET, ["images/a.jpg", "images/gone.jpg", "results/images/old.jpg.json"]))
    assert [r["key"] for r in response["results"]] == ["images/a.jpg"]
    assert [s["reason"] for s in response["skipped"]] == ["a result, not an image"]
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="results/images/a.jpg.json")["Body"].read())
    assert written["label"] == "boxes" and written["model"]["name"] == "fixture-psu"
    missing = json.loads(s3.get_object(Bucket=BUCKET, Key="results/images/gone.jpg.json")["Body"].read())
    assert missing["error"] == "NoSuchKey"


def swapped_model(tmp_path):
    """The one-vs-rest fixture with two members swapped: same name and version, other content."""
    import shutil

    swapped_dir = tmp_path / "swapped"
    shutil.copytree(MODELS["one-vs-rest"], swapped_dir)
    manifest = Manifest.load(swapped_dir)
    members = (manifest.members[1].__class__(manifest.members[0].label, manifest.members[1].files),
               manifest.members[0].__class__(manifest.members[1].label, manifest.members[0].files)) + manifest.members[2:]
    Manifest(manifest.name, manifest.version, manifest.layout, manifest.input, members).write(swapped_dir)
    return Manifest.load(swapped_dir), swapped_dir


def objects(s3):
    return {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_a_published_version_never_changes(s3, tmp_path):
    from rcyc_core.errors import InputError

    put_model(s3, "one-vs-rest")
    before = objects(s3)
    versions = len(s3.list_object_versions(Bucket=BUCKET)["Versions"])
    manifest, directory = swapped_model(tmp_path)
    with pytest.raises(InputError) as refused:
        store.put_model(s3, BUCKET, manifest, directory, promote=False)
    assert refused.value.kind == "VersionExists" and "--version" in refused.value.hint
    assert objects(s3) == before
    # The same content again: nothing is sent (no new object versions), and it says so.
    assert store.publish_model(s3, BUCKET, Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"])[:2] == \
        (store.model_prefix(Manifest.load(MODELS["one-vs-rest"])) + "manifest.json", False)
    assert len(s3.list_object_versions(Bucket=BUCKET)["Versions"]) == versions


def test_a_manifest_changed_behind_rcyc_is_refused_at_every_load(s3, tmp_path):
    put_model(s3, "one-vs-rest")
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    event = events.make_event(BUCKET, ["images/a.jpg"])
    warm = make_function(s3, tmp_path / "warm", refresh_seconds=0)
    served = warm.handle(event)["model"]
    # Someone rewrites the published manifest in place (not through rcyc); the pointer still names the old sha256.
    manifest, _ = swapped_model(tmp_path)
    s3.put_object(Bucket=BUCKET, Key=store.model_prefix(manifest) + "manifest.json", Body=manifest.to_json().encode())
    cold = make_function(s3, tmp_path / "cold").handle(event)
    assert cold["results"] == [] and cold["errors"][0]["error"] == "ModelIntegrityError"
    assert warm.handle(event)["model"] == served  # the warm instance keeps what it verified


def test_a_model_whose_outputs_are_not_what_its_layout_promises_is_refused_at_load(s3, tmp_path):
    """A network with 2 outputs under a softmax manifest (put straight into S3, past upload-model's check)."""
    import shutil

    from rcyc_core.manifest import FileRef, Member, sha256_file

    directory = tmp_path / "two-outputs"
    shutil.copytree(MODELS["softmax"], directory)
    shutil.copyfile(MODELS["one-vs-rest"] / "model_0_prime.tflite", directory / "model.tflite")
    manifest = Manifest.load(directory)
    member = manifest.members[0]
    files = {**member.files, "tflite": FileRef("model.tflite", sha256_file(directory / "model.tflite"))}
    Manifest(manifest.name, "two-outputs", manifest.layout, manifest.input, (Member(member.label, files),)).write(directory)
    store.put_model(s3, BUCKET, Manifest.load(directory), directory)
    put(s3, "images/a.jpg", IMAGES / "boxes" / "boxes_1.jpg")
    response = make_function(s3, tmp_path / "fn").handle(events.make_event(BUCKET, ["images/a.jpg"]))
    assert response["results"] == [] and response["errors"][0]["error"] == "InvalidModelOutput"
    assert "(2,)" in response["errors"][0]["message"]


@pytest.mark.parametrize("members", [["x"], [{"label": None, "tflite": {"path": "m.tflite", "sha256": "../../etc/passwd"}}]])
def test_a_malformed_manifest_is_a_model_error(members):
    from rcyc_core.errors import ModelError

    data = json.loads((MODELS["softmax"] / "manifest.json").read_text())
    data["members"] = members
    with pytest.raises(ModelError):
        Manifest.from_dict(data)


@pytest.mark.parametrize("where", ["prepare", "run"])
def test_a_failure_that_is_no_image_error_costs_the_batch_not_the_instance(s3, tmp_path, monkeypatch, where):
    """Decoding happens in the fetching threads, inference after: a failure in either (not an image's
    fault) makes every record of the batch an InferenceError, and the next event is answered."""
    from rcyc_core.inference import Classifier

    put_model(s3)
    keys = [f"images/{n}.jpg" for n in range(3)]
    for key in keys:
        put(s3, key, IMAGES / "boxes" / "boxes_0.jpg")
    function = make_function(s3, tmp_path)
    original = getattr(Classifier, where)

    def broken(*args, **kwargs):
        raise RuntimeError("the backend is gone")

    monkeypatch.setattr(Classifier, where, broken)
    response = function.handle(events.make_event(BUCKET, keys))
    assert response["results"] == []
    assert [(e["record"], e["error"]) for e in response["errors"]] == [(0, "InferenceError"), (1, "InferenceError"), (2, "InferenceError")]
    monkeypatch.setattr(Classifier, where, original)
    assert [r["label"] for r in function.handle(events.make_event(BUCKET, keys))["results"]] == ["boxes"] * 3
