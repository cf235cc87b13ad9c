"""rcyc eval through the CLI: its figures are what rcyc predict says of the same files; the gate's exit
status; a model in the bucket by reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcyc_cli.exit_status import ExitStatus
from tests.conftest import FIXTURES, LABELS, MODELS, drawings, examples
from tests.cli import run

EVAL_DIR = FIXTURES / "eval"



def expected_from_predict(data_dir: Path, model: Path) -> tuple[list[list[int]], float, int]:
    """The confusion matrix and accuracy computed directly from `rcyc predict --json` on every file."""
    files = sorted(p for p in data_dir.rglob("*") if p.is_file() and p.suffix.lower() in {".jpg", ".png"})
    answer = json.loads(run("predict", "--json", "--model", model, *files).stdout)
    matrix = [[0] * 5 for _ in LABELS]
    for entry in answer["results"]:
        true = Path(entry["key"]).relative_to(data_dir).parts[0]
        matrix[LABELS.index(true)][LABELS.index(entry["label"])] += 1
    evaluated = sum(map(sum, matrix))
    return matrix, sum(matrix[i][i] for i in range(5)) / evaluated, len(answer["errors"])


@pytest.mark.parametrize("layout", ["softmax", "one-vs-rest"])
def test_eval_json_matches_predict_on_the_fixture_folder(layout):
    result = run("eval", EVAL_DIR, "--model", MODELS[layout], "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    matrix, accuracy, broken = expected_from_predict(EVAL_DIR, MODELS[layout])
    assert report["confusion_matrix"] == matrix and report["accuracy"] == pytest.approx(accuracy)
    assert len(report["broken"]) == broken == 2  # the truncated and the not-an-image files, listed, not fatal
    assert report["labels"] == list(LABELS) and report["gate"]["failed"] is False


def _drawings(root: Path, counts: list[int], seed: int) -> None:
    """``counts[i]`` drawings under label i's folder; every third one shows the next class on purpose."""
    draw = drawings().draw
    rng = np.random.default_rng(seed)
    for index, (label, count) in enumerate(zip(LABELS, counts)):
        (root / label).mkdir(parents=True)
        for n in range(count):
            draw((index + (n % 3 == 2)) % 5, rng).convert("RGB").save(root / label / f"{n}.jpg", quality=90)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
@given(counts=st.lists(st.integers(0, 4), min_size=5, max_size=5).filter(any), seed=st.integers(0, 2 ** 16))
def test_eval_matches_predict_on_generated_folders(tmp_path_factory, counts, seed):
    root = tmp_path_factory.mktemp("generated")
    _drawings(root, counts, seed)
    report = json.loads(run("eval", root, "--model", MODELS["softmax"], "--json").stdout)
    matrix, accuracy, _ = expected_from_predict(root, MODELS["softmax"])
    assert report["confusion_matrix"] == matrix and report["accuracy"] == pytest.approx(accuracy)


def test_the_gate_has_its_own_exit_status():
    below = run("eval", EVAL_DIR, "--min-accuracy", "0.99", "--json")
    assert below.exit_code == ExitStatus.GATE_FAILED == 9
    assert json.loads(below.stdout)["gate"]["reasons"][0].startswith("accuracy")
    above = run("eval", EVAL_DIR, "--min-accuracy", "0.5")
    assert above.exit_code == 0 and "confusion matrix" in above.stdout


def test_against_compares_two_models_on_the_same_images(tmp_path):
    result = run("eval", EVAL_DIR, "--model", MODELS["softmax"], "--against", MODELS["one-vs-rest"], "--json",
                 "--report", tmp_path / "report.html")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    comparison = report["against"]["comparison"]
    assert comparison["images"] == report["evaluated"] and 0 <= comparison["mcnemar"]["p_value"] <= 1
    assert (tmp_path / "report.html").read_text().count("<table") >= 1


def test_unknown_folder_names_are_refused_with_the_labels(tmp_path):
    shutil.copytree(EVAL_DIR, tmp_path / "data")
    (tmp_path / "data" / "boxes").rename(tmp_path / "data" / "cardboard")
    result = run("eval", tmp_path / "data")
    assert result.exit_code == ExitStatus.BAD_INPUT and "cardboard" in result.stderr and "soda_cans" in result.stderr


def test_a_label_mapping_in_rcyc_toml_renames_folders(tmp_path, monkeypatch):
    shutil.copytree(EVAL_DIR, tmp_path / "data")
    (tmp_path / "data" / "boxes").rename(tmp_path / "data" / "cardboard")
    (tmp_path / "rcyc.toml").write_text('[eval.labels]\ncardboard = "boxes"\n')
    monkeypatch.setenv("RCYC_CONFIG", str(tmp_path / "rcyc.toml"))
    result = run("eval", tmp_path / "data", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["per_class"]["boxes"]["support"] == 5
