"""A hostile reviewer's cases for the honest-numbers work: a tampered or malformed provenance in a model's
manifest, broken images the model trained on, options that only make sense with another one."""

from __future__ import annotations

import copy
import json

import pytest

from rcyc_cli.evaluate import evidence, provenance
from tests.cli import run
from tests.unit.test_eval_evidence import EVAL_DIR, bucket, model_trained_on  # noqa: F401 - bucket is a fixture

TRAIN = ["boxes/boxes_0.jpg", "soda_cans/soda_cans_0.jpg", "glass_bottles/glass_bottles_0.jpg"]

TAMPERED = {  # what an edited manifest can hold where rcyc wrote a fingerprint
    "sha256 a list": lambda p: p["images"][0].__setitem__("sha256", ["a"]),
    "sha256 a dict": lambda p: p["images"][0].__setitem__("sha256", {"a": 1}),
    "no split": lambda p: p["images"][0].pop("split"),
    "split a list": lambda p: p["images"][0].__setitem__("split", ["train"]),
    "phash over 64 bits": lambda p: p["images"][0].__setitem__("phash", "f" * 40),
    "phash negative": lambda p: p["images"][0].__setitem__("phash", "-1"),
    "phash a number": lambda p: p["images"][0].__setitem__("phash", 12345),
    "record a string": lambda p: p["images"].__setitem__(0, "x"),
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_provenance_record_is_dropped_counted_and_warned_about(tmp_path, tamper):
    model, record = model_trained_on(tmp_path, TRAIN, [])
    manifest = json.loads((model / "manifest.json").read_text())
    tamper(manifest["provenance"])
    (model / "manifest.json").write_text(json.dumps(manifest))
    result = run("eval", EVAL_DIR, "--model", model, "--json")
    assert result.exit_code == 0, result.stderr
    leakage = json.loads(result.stdout)["leakage"]
    assert leakage["invalid_records"] == 1 and leakage["seen"] == len(TRAIN) - 1  # the sound records still count
    assert "provenance records are malformed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("images", [5, None, "abc", {"a": 1}])
def test_a_provenance_whose_images_are_not_a_list_checks_nothing_and_says_so(tmp_path, images):
    model, _ = model_trained_on(tmp_path, TRAIN, [])
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["provenance"]["images"] = images
    (model / "manifest.json").write_text(json.dumps(manifest))
    result = run("eval", EVAL_DIR, "--model", model, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["leakage"]["seen"] == 0 and "malformed" in result.stderr


def test_match_survives_records_it_did_not_write():
    record = provenance.record([(EVAL_DIR / TRAIN[0], "train", None)], EVAL_DIR, 0, {})
    hostile = copy.deepcopy(record)
    hostile["images"] += [{"sha256": ["x"], "phash": "-1", "split": "train"}, {"phash": "f" * 40}, 7]
    found = provenance.match([hostile], [(TRAIN[0], EVAL_DIR / TRAIN[0])])
    assert found == {TRAIN[0]: {"match": "exact", "split": "train", "distance": 0}}


def test_a_broken_file_the_model_trained_on_is_not_counted_as_an_evaluated_seen_image():
    result = {"predictions": [{"path": "a.jpg", "true": "boxes", "predicted": "boxes", "confidence": 1.0, "correct": True,
                               "scores": {}}],
              "metrics": {"accuracy_ci": [0.2, 1.0]}, "misclassified": []}
    seen = {"broken.jpg": {"match": "exact", "split": "train", "distance": 0}}  # no prediction: it did not decode
    evidence.headline(result, seen, checked=True)
    assert result["leakage"]["seen"] == 0 and result["leakage"]["unseen"] == 1 and result["accuracy_ci"] == [0.2, 1.0]


# The promotion gate when the current model cannot be read, and options that need another one


def test_a_pointer_to_a_broken_version_is_no_current_model_and_the_floor_still_holds(bucket):
    import boto3

    from rcyc_cli.evaluate.session import gate_figures, promotion_gate

    s3 = boto3.client("s3", region_name="us-east-1")
    for key, body in [("models/ghost/9/manifest.json", None), ("models/broken/1/manifest.json", b"{}")]:
        if body is not None:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        s3.put_object(Bucket=bucket, Key="models/current.json",
                      Body=json.dumps({"manifest": key, "name": "x", "version": "1", "sha256": "0" * 64}).encode())
        thin = promotion_gate(bucket, "candidate/1", EVAL_DIR)  # raised ModelError (exit 3) before
        assert thin["failed"] and thin["reasons"][0].startswith("too little held-out evidence")
        assert thin["current_accuracy"] is None and "the current model cannot be read" in thin["note"]
        assert any("cannot be read" in line for line in gate_figures(thin))
        assert not promotion_gate(bucket, "candidate/1", EVAL_DIR, min_per_class=4)["failed"]


def test_models_promote_over_a_broken_current_model_with_enough_evidence(bucket):
    import boto3

    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=bucket, Key="models/current.json",
        Body=json.dumps({"manifest": "models/gone/1/manifest.json", "name": "gone", "version": "1", "sha256": "0" * 64}).encode())
    promoted = run("models", "promote", "candidate", "1", "--bucket", bucket, "--eval", EVAL_DIR, "--min-per-class", "4", "--json")
    assert promoted.exit_code == 0, promoted.stderr
    assert json.loads(promoted.stdout)["current"]["name"] == "candidate"


@pytest.mark.parametrize("args", [["models", "promote", "candidate", "1", "--bucket", "b", "--min-per-class", "5"],
                                  ["train", str(EVAL_DIR), "--out", "unused", "--min-per-class", "5"],
                                  ["models", "import", "unused.tar.gz", "--name", "n", "--bucket", "b", "--min-per-class", "5"]],
                         ids=["promote without --eval", "train without --upload", "import without --promote"])
def test_min_per_class_without_its_gate_is_a_usage_error_not_silently_ignored(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2 and "--min-per-class" in result.stderr and "needs" in result.stderr
    assert not (tmp_path / "unused").exists()


def test_exclude_suspects_without_cleanlab_fails_before_any_feature_is_extracted(tmp_path, monkeypatch):
    import importlib.util

    from tests.conftest import need

    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow")
    from rcyc_cli.evaluate import suspects
    from rcyc_cli.train import pipeline

    monkeypatch.setattr(suspects, "available", lambda: False)
    monkeypatch.setattr(pipeline, "backbone_tflite", lambda *a: pytest.fail("the backbone was prepared first"))
    result = run("train", EVAL_DIR, "--out", tmp_path / "m", "--exclude-suspects")
    assert result.exit_code != 0 and "cleanlab is not installed" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


# Copies of one photo are not more evidence


def padded_folder(root, copies: int):
    """The fixture's correctly filed drawings, each photo ``copies`` times (a hostile way to reach the floor)."""
    import shutil

    for photo in EVAL_DIR.glob("*/*_[0-2].jpg"):
        (root / photo.parent.name).mkdir(parents=True, exist_ok=True)
        for n in range(copies):
            shutil.copy(photo, root / photo.parent.name / f"{photo.stem}_copy{n}.jpg")
    return root


def test_eval_warns_that_byte_identical_copies_narrow_the_intervals(tmp_path):
    data = padded_folder(tmp_path / "data", 2)
    result = run("eval", data, "--json")
    evaluation = json.loads(result.stdout)
    assert evaluation["duplicates"]["copies"] == evaluation["evaluated"] // 2
    assert "byte-identical copies" in result.stderr
    plain = json.loads(run("eval", EVAL_DIR, "--json").stdout)
    assert plain["duplicates"] == {"copies": 0, "images": []}


def test_copies_do_not_pad_the_promotion_gates_floor(bucket, tmp_path):
    from rcyc_cli.evaluate.session import promotion_gate

    data = padded_folder(tmp_path / "data", 7)  # 3 photos x 7 copies = 21 "images" per class
    decision = promotion_gate(bucket, "candidate/1", data)
    assert decision["failed"] and decision["reasons"][0].startswith("too little held-out evidence")
    assert max(decision["per_class"].values()) == 3 and decision["copies_left_out"] > 0


# No figure where there is nothing to measure


def test_the_accuracy_gate_on_a_folder_the_model_trained_on_says_so(tmp_path):
    every = sorted(str(p.relative_to(EVAL_DIR)) for p in EVAL_DIR.rglob("*") if p.suffix in (".jpg", ".png"))
    model, _ = model_trained_on(tmp_path, every, [])
    result = run("eval", EVAL_DIR, "--model", model, "--min-accuracy", "0.5", "--json")
    assert result.exit_code == 9
    reasons = json.loads(result.stdout)["gate"]["reasons"]
    assert reasons and "in the model's training set" in reasons[0] and "could be evaluated" not in reasons[0]


def test_a_folder_of_broken_files_is_an_error_not_an_accuracy(tmp_path):
    """No image could be classified: no figure at all (not 0.0%, not n/a with exit 0) but the documented
    bad-input exit with the first broken file named (issue 20: quiet wrong answers are errors)."""
    for label in ("boxes", "soda_cans"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "x.jpg").write_bytes(b"not an image")
    for args in (("--json",), ()):
        result = run("eval", tmp_path, *args)
        assert result.exit_code == 3 and result.stdout == ""
        assert result.stderr.count("error:") == 1 and "x.jpg" in result.stderr and "hint:" in result.stderr


def test_trains_held_out_figures_leave_out_copies_of_training_images(tmp_path, monkeypatch):
    """A folder holding a photo twice (once re-encoded) can put one copy in training and one in the held-out
    set: train's held-out accuracy must not count it, as eval would not (the training itself is faked)."""
    from rcyc_cli.train import pipeline
    from rcyc_cli.train.session import TrainOptions, run_training
    from tests.unit.test_eval_evidence import reencoded

    data = tmp_path / "data"
    for label in ("boxes", "soda_cans"):
        (data / label).mkdir(parents=True)
    (data / "boxes" / "copy.jpg").write_bytes(reencoded(EVAL_DIR / "boxes" / "boxes_0.jpg", 0.5))
    (data / "soda_cans" / "other.jpg").write_bytes((EVAL_DIR / "glass_bottles" / "glass_bottles_1.jpg").read_bytes())

    def fake_train(images, out, **options):
        model, _ = model_trained_on(tmp_path, ["boxes/boxes_0.jpg"], [])
        model.rename(out)
        return {"held_out_images": [(str(i.path), i.label) for i in images]}

    monkeypatch.setattr(pipeline, "train", fake_train)
    summary = run_training(TrainOptions(data, tmp_path / "out"))
    assert summary["eval"]["copies_of_training_images"] == 1 and summary["eval"]["evaluated"] == 1


def test_perceptual_hashes_of_another_algorithm_are_not_compared_but_sha256_still_is(tmp_path):
    from tests.unit.test_eval_evidence import reencoded

    original = EVAL_DIR / TRAIN[0]
    copy_path = tmp_path / "copy.jpg"
    copy_path.write_bytes(reencoded(original, 0.5))
    record = provenance.record([(original, "train", None)], EVAL_DIR, 0, {})
    images = [("same", original), ("copy", copy_path)]
    assert {k: v["match"] for k, v in provenance.match([record], images).items()} == {"same": "exact", "copy": "near"}
    foreign = {**record, "hash": "some-other-phash"}  # its 16 hex digits would be compared as if they were ours
    assert {k: v["match"] for k, v in provenance.match([foreign], images).items()} == {"same": "exact"}
