"""rcyc_cli.evaluate.evaluate: the plumbing from classify answers to the evaluation dict.

The classifier here is a fake on purpose: these tests check how answers become figures (chunks,
broken files, ordering, the comparison), not what a model answers. The real-model path is exercised in
tests/e2e/test_eval_report_browser.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcyc_cli.dataset import Dataset, LabelledImage, load_dataset
from rcyc_cli.evaluate import evaluate
from rcyc_core.errors import InputError
from rcyc_core.labels import LABELS

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"name": "fake", "version": "7", "sha256": "ab" * 32}


def scores_for(label: str, confidence: float | None) -> dict:
    rest = (1 - (confidence or 0)) / 4
    return {name: (confidence if name == label else rest) for name in LABELS}


class FakeClassifier:
    """Answers from a table path -> (label, confidence) or an error kind; records each call."""

    def __init__(self, answers: dict[Path, tuple], model: dict = MODEL):
        self.answers = answers
        self.model = model
        self.calls: list[list[Path]] = []

    def __call__(self, paths: list[Path]) -> dict:
        self.calls.append(list(paths))
        response = {"results": [], "errors": [], "skipped": [], "model": dict(self.model)}
        for record, path in enumerate(paths):
            answer = self.answers[path]
            if answer[0] == "error":
                response["errors"].append({"record": record, "bucket": None, "key": str(path), "error": answer[1],
                                           "message": f"cannot read {path.name}"})
            elif answer[0] == "skip":
                response["skipped"].append({"record": record, "bucket": None, "key": str(path), "reason": "odd"})
            elif answer[0] == "none":
                continue
            else:
                label, confidence = answer
                response["results"].append({"record": record, "bucket": None, "key": str(path), "label": label,
                                            "confidence": confidence, "scores": scores_for(label, confidence),
                                            "raw": [0.0] * 5})
        # the contract lists errors apart from results; order inside each list is the caller's concern
        response["results"].reverse()
        return response


def synthetic(pairs: list[tuple[str, str]], root: Path = Path("data")) -> tuple[Dataset, dict]:
    images, answers = [], {}
    for i, (true, predicted) in enumerate(pairs):
        path = root / true / f"{i:05d}.jpg"
        images.append(LabelledImage(path, true))
        answers[path] = (predicted, 0.5 + (i % 50) / 100)
    return Dataset(root, images), answers


def test_fixture_folder_with_broken_files_and_mislabelled_ones():
    data = load_dataset(ROOT / "fixtures" / "eval")
    answers = {}
    for image in data.images:
        name = image.path.stem
        if image.path.name in ("truncated.jpg", "not_an_image.jpg"):
            answers[image.path] = ("error", "CorruptImage")
        else:
            # the drawing's own class is in its file name for the copies; the edge cases are right
            own = next((label for label in sorted(LABELS, key=len, reverse=True) if name.startswith(label)), image.label)
            answers[image.path] = (own, 0.97)
    seen = []
    result = evaluate(data, FakeClassifier(answers), model_name="candidate", progress=seen.append)
    assert result["images"] == 26 and result["evaluated"] == 24
    assert sorted(b["path"] for b in result["broken"]) == ["plastic_bottles/truncated.jpg", "soda_cans/not_an_image.jpg"]
    assert {b["error"] for b in result["broken"]} == {"CorruptImage"}
    assert sorted((m["path"], m["true"], m["predicted"]) for m in result["misclassified"]) == [
        ("boxes/soda_cans_3.jpg", "boxes", "soda_cans"),
        ("glass_bottles/plastic_bottles_3.jpg", "glass_bottles", "plastic_bottles"),
        ("plastic_bottles/boxes_3.jpg", "plastic_bottles", "boxes"),
    ]
    assert result["accuracy"] == pytest.approx(21 / 24)
    assert result["metrics"]["accuracy"] == result["accuracy"]
    assert result["confusion_matrix"] == result["metrics"]["confusion_matrix"]
    assert sum(map(sum, result["confusion_matrix"])) == 24
    assert sum(seen) == 26
    assert result["model"] == {**MODEL, "given_as": "candidate"}
    assert result["labels"] == list(LABELS)
    json.dumps(result)  # all plain data


def test_chunks_keep_memory_flat_and_progress_moving():
    data, answers = synthetic([(LABELS[i % 5], LABELS[i % 5]) for i in range(150)])
    classify = FakeClassifier(answers)
    seen = []
    result = evaluate(data, classify, progress=seen.append, chunk_size=64)
    assert [len(call) for call in classify.calls] == [64, 64, 22]
    assert seen == [64, 64, 22]
    assert [p for call in classify.calls for p in call] == data.paths()
    assert [p["path"] for p in result["predictions"]] == [data.relative(p) for p in data.paths()]
    assert result["accuracy"] == 1.0 and result["misclassified"] == []
    with pytest.raises(ValueError):
        evaluate(data, classify, chunk_size=0)


def test_every_kind_of_unanswered_image_is_broken_not_fatal():
    data, answers = synthetic([("boxes", "boxes")] * 7)
    paths = data.paths()
    answers[paths[1]] = ("error", "NotAnImage")
    answers[paths[2]] = ("skip",)
    answers[paths[3]] = ("none",)
    answers[paths[4]] = ("tin_cans", 0.9)
    answers[paths[5]] = ("boxes", None)
    result = evaluate(data, FakeClassifier(answers))
    assert result["evaluated"] == 2  # images 0 and 6
    assert [(b["path"], b["error"]) for b in result["broken"]] == [
        ("boxes/00001.jpg", "NotAnImage"), ("boxes/00002.jpg", "Skipped"), ("boxes/00003.jpg", "NoAnswer"),
        ("boxes/00004.jpg", "UnknownLabel"), ("boxes/00005.jpg", "InvalidAnswer")]
    assert result["metrics"]["support"] == 2


def test_misclassified_most_confident_first():
    data, answers = synthetic([("boxes", "soda_cans"), ("boxes", "glass_bottles"), ("soda_cans", "boxes")])
    paths = data.paths()
    answers[paths[0]] = ("soda_cans", 0.55)
    answers[paths[1]] = ("glass_bottles", 0.99)
    answers[paths[2]] = ("boxes", 0.70)
    result = evaluate(data, FakeClassifier(answers))
    assert [m["confidence"] for m in result["misclassified"]] == [0.99, 0.70, 0.55]
    assert set(result["misclassified"][0]) == {"path", "true", "predicted", "confidence", "scores"}
    assert list(result["misclassified"][0]["scores"]) == list(LABELS)


def test_a_model_that_changes_mid_run_is_refused():
    data, answers = synthetic([("boxes", "boxes")] * 70)
    classify = FakeClassifier(answers)
    original = classify.__call__

    def moving(paths):
        response = original(paths)
        if len(classify.calls) > 1:
            response["model"]["sha256"] = "cd" * 32
        return response

    with pytest.raises(InputError, match="model changed"):
        evaluate(data, moving, chunk_size=64)


def test_classify_must_return_the_contract():
    data, _ = synthetic([("boxes", "boxes")])
    with pytest.raises(TypeError):
        evaluate(data, lambda paths: [])


def test_against_adds_the_comparison():
    pairs = [(LABELS[i % 5], LABELS[i % 5]) for i in range(40)]
    data, good = synthetic(pairs)
    worse = dict(good)
    for path in data.paths()[:12]:
        worse[path] = ("plastic_bottles" if "plastic" not in str(path) else "boxes", 0.8)
    seen = []
    result = evaluate(data, FakeClassifier(worse, {**MODEL, "version": "8"}), "candidate", seen.append,
                      against=FakeClassifier(good), against_name="current")
    assert sum(seen) == 80
    other = result["against"]
    assert other["model"]["given_as"] == "current" and other["accuracy"] == 1.0
    cmp = other["comparison"]
    assert cmp["images"] == 40 and cmp["accuracy_b"] == 1.0
    assert cmp["agreement"]["a_wrong_b_right"] == 12 and cmp["agreement"]["a_right_b_wrong"] == 0
    assert cmp["mcnemar"]["significant"] and cmp["mcnemar"]["better"] == "b"
    assert len(cmp["disagreements"]) == 12
    json.dumps(result)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=1, max_size=200),
       st.integers(1, 70))
def test_property_reported_matrix_is_what_the_classifier_said(pairs, chunk_size):
    """eval's accuracy and confusion matrix equal a direct count of the classifier's own answers, however
    the images are chunked (the e2e version against `rcyc predict --json` lives with the command)."""
    data, answers = synthetic(pairs)
    result = evaluate(data, FakeClassifier(answers), chunk_size=chunk_size)
    said = Counter((image.label, answers[image.path][0]) for image in data.images)
    matrix = result["confusion_matrix"]
    assert matrix == [[said[(t, p)] for p in LABELS] for t in LABELS]
    assert result["accuracy"] == pytest.approx(sum(n for (t, p), n in said.items() if t == p) / len(pairs))
    assert [sum(row) for row in matrix] == [data.counts()[label] for label in LABELS]
