"""The training container's contract (rcyc_cli/train/sagemaker.py) on a temp /opt/ml tree: string
hyperparameters coerced and checked, the channel found, a broken channel or bad hyperparameter writes
output/failure and exits non-zero, the metric lines are what MetricDefinitions read; then one real
training run (the train extra) whose rerun on the same checkpoints computes no feature again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rcyc_cli.train import sagemaker
from rcyc_cli.train.sagemaker import Layout, main, metric_line, parse_hyperparameters
from rcyc_core.errors import InputError
from tests.conftest import drawings, need


def tree(root: Path, hyperparameters: dict | None = None, channel: str = "training") -> Layout:
    layout = Layout(root)
    (layout.data / channel).mkdir(parents=True)
    layout.model.mkdir()
    if hyperparameters is not None:
        layout.hyperparameters.parent.mkdir(parents=True)
        layout.hyperparameters.write_text(json.dumps(hyperparameters))
    return layout


def test_string_hyperparameters_are_decoded_coerced_and_checked():
    hp = parse_hyperparameters({"epochs": "3", "seed": "7", "val_split": "0.25", "fine_tune": "true", "name": "shop",
                                "version": "\"v1\"", "sagemaker_job_name": "ignored"})
    assert (hp.epochs, hp.seed, hp.val_split, hp.fine_tune, hp.name, hp.version) == (3, 7, 0.25, True, "shop", "v1")
    assert parse_hyperparameters({"epochs": 5, "fine_tune": "False"}).epochs == 5
    assert parse_hyperparameters({}).epochs == 40
    for bad in ({"epochs": "three"}, {"epochs": "0"}, {"epochs": "2.5"}, {"val_split": "0.9"}, {"fine_tune": "maybe"},
                {"epoch": "3"}, {"name": "../x"}, {"seed": "true"}):
        with pytest.raises(InputError):
            parse_hyperparameters(bad)


def test_the_channel_is_training_or_the_only_one(tmp_path):
    layout = tree(tmp_path / "a", channel="photos")
    assert sagemaker.channel_dir(layout, None).name == "photos"
    (layout.data / "other").mkdir()
    with pytest.raises(InputError, match="no data channel 'training'"):
        sagemaker.channel_dir(layout, None)
    assert sagemaker.channel_dir(layout, "other").name == "other"


@pytest.mark.parametrize("case", ["empty channel", "no channel", "unknown label", "bad hyperparameter", "not json"])
def test_a_broken_job_writes_the_failure_file_and_exits_non_zero(tmp_path, case, capsys):
    layout = tree(tmp_path, {"epochs": "3"})
    if case == "no channel":
        (layout.data / "training").rmdir()
    elif case == "unknown label":
        (layout.data / "training" / "bottles").mkdir()
        (layout.data / "training" / "bottles" / "a.jpg").write_bytes(b"x")
    elif case == "bad hyperparameter":
        layout.hyperparameters.write_text(json.dumps({"epochs": "many"}))
    elif case == "not json":
        layout.hyperparameters.write_text("{epochs: 3")
    status = main(["train", "--root", str(tmp_path)])
    assert status != 0
    reason = layout.failure.read_text()
    assert reason.strip() and "Traceback" not in reason
    assert not any(layout.model.iterdir())
    assert "rcyc training failed" in capsys.readouterr().err


def test_the_metric_definitions_read_the_printed_lines():
    line = metric_line("head", 3, 40, {"loss": 0.25, "accuracy": 0.9, "val_loss": 0.5, "val_accuracy": 0.75})
    found = {d["Name"]: float(re.search(d["Regex"], line).group(1)) for d in sagemaker.METRIC_DEFINITIONS}
    assert found == {"train:loss": 0.25, "train:accuracy": 0.9, "validation:loss": 0.5, "validation:accuracy": 0.75}
    no_val = metric_line("head", 1, 1, {"loss": 1e-7, "accuracy": 1.0, "val_loss": None, "val_accuracy": None})
    assert re.search(sagemaker.METRIC_DEFINITIONS[0]["Regex"], no_val).group(1) == "0.000000"
    assert re.search(sagemaker.METRIC_DEFINITIONS[3]["Regex"], no_val) is None


@pytest.mark.keras
@pytest.mark.slow  # two short trainings of the real backbone
def test_a_job_trains_with_string_hyperparameters_and_a_rerun_resumes_from_the_checkpoints(tmp_path, capsys):
    from rcyc_cli.train import installed

    ok, why = installed()
    need(ok, f"the train extra ({why})")
    layout = tree(tmp_path / "job1", {"epochs": "3", "seed": "1"})
    drawings().write_folder(layout.data / "training", 4, 3)
    checkpoints = tmp_path / "checkpoints"
    layout.root.joinpath("checkpoints").symlink_to(checkpoints, target_is_directory=True)
    checkpoints.mkdir()
    assert main(["train", "--root", str(layout.root)]) == 0, layout.failure.read_text()
    summary = json.loads((layout.output / "data" / "training.json").read_text())
    assert summary["head"]["epochs_run"] == 3 and summary["features"]["computed"] == 20
    manifest = json.loads((layout.model / "manifest.json").read_text())
    assert manifest["layout"] == "softmax" and not layout.failure.exists()
    assert len(re.findall(r"rcyc-metric stage=head epoch=\d+/3 ", capsys.readouterr().out)) == 3

    again = tree(tmp_path / "job2", {"epochs": "3", "seed": "1"})
    drawings().write_folder(again.data / "training", 4, 3)
    again.root.joinpath("checkpoints").symlink_to(checkpoints, target_is_directory=True)
    assert main(["train", "--root", str(again.root)]) == 0
    rerun = json.loads((again.output / "data" / "training.json").read_text())
    assert rerun["features"] == {"computed": 0, "cached": 20} and rerun["backbone"]["cached"] is True
    assert json.loads((again.model / "manifest.json").read_text())["version"] == manifest["version"]  # same seed, same model
