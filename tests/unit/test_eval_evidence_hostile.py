"""A hostile reviewer's cases for the honest-numbers work: a tampered or malformed provenance in a model's
manifest, broken images the model trained on, options that only make sense with another one."""

from __future__ import annotations

import copy
import json

import pytest

from rcyc_cli.evaluate import evidence, provenance
from tests.cli import run
from tests.unit.test_eval_evidence import EVAL_DIR, model_trained_on

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
