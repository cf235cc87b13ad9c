"""Honest numbers: Wilson intervals, suspected label errors (cleanlab), train/test leakage by provenance, and
the promotion gate's floor of evidence. No TensorFlow: the fixture models run under LiteRT."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil

import boto3
import numpy as np
import pytest
from PIL import Image

from rcyc_core.manifest import Manifest
from rcyc_cli.evaluate import evidence, provenance, suspects
from rcyc_cli.evaluate.metrics import wilson_interval
from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import FIXTURES, LABELS, MODELS

EVAL_DIR = FIXTURES / "eval"
MISLABELLED = {"boxes/soda_cans_3.jpg", "glass_bottles/plastic_bottles_3.jpg", "plastic_bottles/boxes_3.jpg"}


# Wilson intervals


@pytest.mark.parametrize("correct,total", [(0, 1), (0, 5), (3, 5), (21, 24), (24, 24), (870, 1000)])
def test_wilson_interval_matches_scipy(correct, total):
    from scipy.stats import binomtest  # scipy comes with the eval extra (cleanlab); rcyc does not need it

    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(correct, total)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(24, 24)
    assert high == 1.0 and 0.86 < low < 0.87  # 100% on 24 images is not "certainly 100%"
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


# Suspected label errors


def test_eval_json_finds_the_mislabelled_fixture_images():
    """Done when: at least 2 of the 3 deliberately mislabelled images, at most 2 correctly labelled ones."""
    result = run("eval", EVAL_DIR, "--json")
    assert result.exit_code == 0, result.stderr
    evaluation = json.loads(result.stdout)
    found = evaluation["suspects"]
    assert found["checked"] and "cleanlab" in found["method"]
    paths = {s["path"] for s in found["images"]}
    assert len(paths & MISLABELLED) >= 2 and len(paths - MISLABELLED) <= 2
    for entry in found["images"]:
        assert entry["looks_like"] != entry["label"] and entry["confidence"] > 0.9
    # accuracy with and without them, each with its interval
    assert evaluation["accuracy"] == pytest.approx(21 / 24)
    assert evaluation["accuracy_ci"] == pytest.approx(list(wilson_interval(21, 24)))
    kept = 24 - len(paths)
    right = 21 - len(paths - MISLABELLED)  # the model is wrong exactly on the mislabelled drawings
    assert found["evaluated_without"] == kept and found["accuracy_without"] == pytest.approx(right / kept)


def test_the_terminal_summary_lists_suspects_with_what_they_look_like():
    result = run("eval", EVAL_DIR, "--model", MODELS["softmax"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "suspected label errors:" in text and "accuracy without them" in text and "95% CI" in text
    assert "labelled plastic_bottles, looks like boxes" in text


def test_find_label_issues_spots_flipped_labels_in_clean_clusters():
    rng = np.random.default_rng(0)
    labels = [LABELS[i % 5] for i in range(100)]
    probabilities = np.full((100, 5), 0.02)
    for i, label in enumerate(labels):
        probabilities[i, LABELS.index(label)] = 0.92
    labels[7], labels[42] = LABELS[3], LABELS[0]  # two wrong folders; the model still sees what they are
    probabilities += rng.uniform(0, 0.01, probabilities.shape)
    assert sorted(suspects.find_label_issues(labels, probabilities)) == [7, 42]
    assert suspects.find_label_issues(labels[:3], probabilities[:3]) == []  # too few images to learn the noise


def test_without_cleanlab_eval_works_and_says_how_to_get_the_check(monkeypatch):
    monkeypatch.setattr(suspects, "available", lambda: False)
    result = run("eval", EVAL_DIR, "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)["suspects"]
    assert found == {"checked": False, "note": suspects.MISSING_NOTE, "hint": suspects.INSTALL_HINT, "images": []}
    lines = [line for line in result.stderr.splitlines() if "cleanlab" in line]
    assert len(lines) == 1 and "pip install 'rcyc[eval]'" in lines[0]


# Provenance and leakage


def reencoded(path, scale: float = 0.75, quality: int = 60) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()


def test_phash_survives_reencoding_and_resizing_but_tells_drawings_apart():
    drawings = sorted(p for label in LABELS for p in (FIXTURES / "images" / label).glob("*.jpg"))
    assert len(drawings) >= 20
    hashes = {p: int(provenance.phash(p.read_bytes()), 16) for p in drawings}
    for path in drawings:
        for scale in (0.5, 1.0, 2.0):
            copy = int(provenance.phash(reencoded(path, scale)), 16)
            assert (copy ^ hashes[path]).bit_count() <= provenance.NEAR_BITS, path
    closest = min((a ^ b).bit_count() for i, a in enumerate(hashes.values()) for b in list(hashes.values())[i + 1:])
    assert closest > 2 * provenance.NEAR_BITS
    assert provenance.phash((FIXTURES / "images" / "edge" / "tiny_1x1.png").read_bytes()) is None  # flat: sha256 only


def model_trained_on(tmp_path, train: list, held_out: list):
    """The softmax fixture model with a provenance block, as rcyc train writes it."""
    directory = tmp_path / "model"
    shutil.copytree(MODELS["softmax"], directory)
    images = [(EVAL_DIR / p, "train", None) for p in train] + [(EVAL_DIR / p, "held_out", None) for p in held_out]
    record = provenance.record(images, EVAL_DIR, seed=3, backbone={"name": "efficientnet-lite0", "port_version": "1"})
    manifest = dataclasses.replace(Manifest.load(directory), provenance=record)
    manifest.write(directory)
    return directory, record


def test_eval_on_images_the_model_trained_on_warns_and_headlines_the_unseen_ones(tmp_path):
    every = sorted(str(p.relative_to(EVAL_DIR)) for p in EVAL_DIR.rglob("*_[0-2].jpg"))
    train, held = every[:-3], every[-3:]
    model, record = model_trained_on(tmp_path, train, held)
    assert record["data_dir"] == "eval" and record["seed"] == 3 and len(record["images"]) == len(every)
    assert all(set(e) == {"sha256", "phash", "split"} for e in record["images"])  # fingerprints, no paths

    result = run("eval", EVAL_DIR, "--model", model, "--json")
    assert result.exit_code == 0, result.stderr
    evaluation = json.loads(result.stdout)
    leakage = evaluation["leakage"]
    assert leakage["checked"] and leakage["seen"] == len(train) == leakage["exact"] and leakage["held_out"] == len(held)
    assert {i["path"] for i in leakage["images"]} == set(train)
    assert leakage["unseen"] == 24 - len(train) == evaluation["metrics"]["support"]
    assert not {p["path"] for p in evaluation["predictions"] if not p["seen"]} & set(train)
    assert evaluation["accuracy"] == pytest.approx(evaluation["metrics"]["correct"] / leakage["unseen"])
    assert leakage["all_images"]["evaluated"] == 24
    assert f"{len(train)} of the evaluated images were in the model's training set" in result.stderr

    human = run("eval", EVAL_DIR, "--model", model)
    assert f"on {leakage['unseen']} unseen images" in " ".join(human.stdout.split())


def test_a_reencoded_copy_of_a_training_image_counts_as_seen(tmp_path):
    model, _ = model_trained_on(tmp_path, ["boxes/boxes_0.jpg", "soda_cans/soda_cans_0.jpg"], [])
    data = tmp_path / "data"
    (data / "boxes").mkdir(parents=True)
    (data / "soda_cans").mkdir()
    (data / "boxes" / "copy.jpg").write_bytes(reencoded(EVAL_DIR / "boxes" / "boxes_0.jpg", 0.5))
    shutil.copy(EVAL_DIR / "soda_cans" / "soda_cans_1.jpg", data / "soda_cans" / "other.jpg")
    evaluation = json.loads(run("eval", data, "--model", model, "--json").stdout)
    assert evaluation["leakage"]["seen"] == 1 and evaluation["leakage"]["near"] == 1
    assert evaluation["leakage"]["images"][0]["path"] == "boxes/copy.jpg"
    assert evaluation["metrics"]["support"] == 1


def test_when_every_image_was_seen_there_is_no_headline_accuracy(tmp_path):
    every = sorted(str(p.relative_to(EVAL_DIR)) for p in EVAL_DIR.rglob("*") if p.suffix in (".jpg", ".png"))
    model, _ = model_trained_on(tmp_path, every, [])
    result = run("eval", EVAL_DIR, "--model", model, "--json")
    evaluation = json.loads(result.stdout)
    assert evaluation["accuracy"] is None and evaluation["accuracy_ci"] is None
    assert evaluation["leakage"]["unseen"] == 0 and "no honest accuracy" in result.stderr
    human = run("eval", EVAL_DIR, "--model", model)
    assert "no honest accuracy" in human.stdout


def test_a_model_without_provenance_is_reported_unchecked():
    evaluation = json.loads(run("eval", EVAL_DIR, "--model", MODELS["softmax"], "--json").stdout)
    assert evaluation["leakage"]["checked"] is False and evaluation["leakage"]["seen"] == 0


def test_headline_without_seen_images_keeps_the_figures():
    result = {"predictions": [{"path": "a", "true": "boxes", "predicted": "boxes", "confidence": 1.0, "correct": True}],
              "metrics": {"accuracy_ci": [0.2, 1.0]}, "misclassified": []}
    evidence.headline(result, {}, checked=True)
    assert result["accuracy_ci"] == [0.2, 1.0] and result["leakage"]["unseen"] == 1 and not result["predictions"][0]["seen"]


# The promotion gate's floor of evidence


@pytest.fixture
def bucket(moto_in_process, monkeypatch):
    from rcyc_cli.cloud import buckets, store

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    buckets.ensure_private_bucket(s3, "rcyc-gate", tls_only=False)  # moto cannot evaluate aws:SecureTransport
    store.put_model(s3, "rcyc-gate", Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"], promote=True)
    candidate = dataclasses.replace(Manifest.load(MODELS["softmax"]), name="candidate")
    store.put_model(s3, "rcyc-gate", candidate, MODELS["softmax"], promote=False)
    return "rcyc-gate"


def test_the_gate_refuses_thin_evidence_with_the_figures(bucket):
    from rcyc_cli.evaluate.session import MIN_PER_CLASS, gate_figures, promotion_gate

    assert MIN_PER_CLASS == 20
    decision = promotion_gate(bucket, "candidate/1", EVAL_DIR)
    assert decision["failed"] and decision["per_class"] == {"boxes": 5, "glass_bottles": 5, "soda_cans": 5,
                                                            "crushed_soda_cans": 4, "plastic_bottles": 5}
    assert decision["reasons"][0].startswith("too little held-out evidence") and "at least 20 per class" in decision["reasons"][0]
    assert decision["accuracy_ci"] and decision["current_accuracy_ci"] and decision["p_value"] is not None
    lines = "\n".join(gate_figures(decision))
    assert "95% CI" in lines and "McNemar p" in lines and "crushed_soda_cans 4" in lines

    enough = promotion_gate(bucket, "candidate/1", EVAL_DIR, min_per_class=4)
    assert not enough["failed"] and enough["reasons"] == []


def test_models_promote_eval_says_why_and_keeps_the_pointer(bucket):
    refused = run("models", "promote", "candidate", "1", "--bucket", bucket, "--eval", EVAL_DIR)
    assert refused.exit_code == ExitStatus.GATE_FAILED
    assert "too little held-out evidence" in refused.stderr and "held-out images per class" in refused.stdout
    assert json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)["current"]["name"] == "fixture-psu"
    accepted = run("models", "promote", "candidate", "1", "--bucket", bucket, "--eval", EVAL_DIR, "--min-per-class", "4")
    assert accepted.exit_code == 0, accepted.stderr
    assert json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)["current"]["name"] == "candidate"
