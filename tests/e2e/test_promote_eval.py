"""models promote --eval against moto's real S3: a significantly worse candidate is refused (exit 9, with
the figures) and the pointer stays; --force promotes it anyway; a candidate that is not worse goes live."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.conftest import MODELS, drawings, need
from tests.e2e.cloud_fixtures import MotoServer, point_aws_at
from tests.cli import run

pytestmark = [pytest.mark.e2e, pytest.mark.keras]
BUCKET = "rcyc-promote-eval"


@pytest.fixture
def private_moto(monkeypatch, tmp_path):
    """A moto server of this test's own, with AWS (credentials, endpoint, region) pointed at it."""
    server = MotoServer().start()
    try:
        point_aws_at(monkeypatch, server.endpoint_url, tmp_path)
        yield server
    finally:
        server.stop()



def always_boxes(path) -> None:
    """A valid softmax model that answers 'boxes' for everything: a real model, and a bad one."""
    from rcyc_core.backends import import_keras

    keras = import_keras()
    inputs = keras.Input((96, 96, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(5, activation="softmax", kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant([4.0, 0, 0, 0, 0]))(pooled)
    keras.Model(inputs, dense).save(path)


def labelled_drawings(root, per_label: int = 20):  # the gate's floor: 20 images per class
    drawings().write_folder(root, per_label, seed=7)
    return root


@pytest.mark.slow  # TensorFlow: a model is built and converted
def test_promote_eval_refuses_a_worse_model_and_promotes_one_that_is_not(private_moto, tmp_path, isolated_cache):
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow")
    data = labelled_drawings(tmp_path / "photos")
    assert run("upload-model", MODELS["one-vs-rest"], "--bucket", BUCKET, "--name", "good", "--version", "1", "--json").exit_code == 0
    always_boxes(tmp_path / "boxes.h5")
    uploaded = run("upload-model", tmp_path / "boxes.h5", "--bucket", BUCKET, "--name", "bad", "--version", "1",
                   "--no-promote", "--json")
    assert uploaded.exit_code == 0, uploaded.stderr

    refused = run("models", "promote", "bad", "1", "--bucket", BUCKET, "--eval", data, "--json")
    assert refused.exit_code == ExitStatus.GATE_FAILED, refused.stderr
    verdict = json.loads(refused.stdout)
    assert verdict["promoted"] is False and verdict["gate"]["accuracy"] < verdict["gate"]["current_accuracy"]
    assert verdict["gate"]["p_value"] < 0.05 and "significantly worse" in verdict["gate"]["reasons"][0]
    listing = json.loads(run("models", "list", "--bucket", BUCKET, "--json").stdout)
    assert listing["current"]["name"] == "good"  # the pointer did not move

    human = run("models", "promote", "bad", "1", "--bucket", BUCKET, "--eval", data)
    assert human.exit_code == ExitStatus.GATE_FAILED and "not promoted" in human.stderr and "hint:" in human.stderr

    assert run("upload-model", MODELS["softmax"], "--bucket", BUCKET, "--name", "also-good", "--version", "1",
               "--no-promote", "--json").exit_code == 0
    thin = run("models", "promote", "also-good", "1", "--bucket", BUCKET, "--eval", data, "--min-per-class", "21", "--json")
    assert thin.exit_code == ExitStatus.GATE_FAILED, thin.stderr
    assert json.loads(thin.stdout)["gate"]["reasons"][0].startswith("too little held-out evidence: boxes 20")
    accepted = run("models", "promote", "also-good", "1", "--bucket", BUCKET, "--eval", data, "--json")
    assert accepted.exit_code == 0, accepted.stderr
    assert json.loads(accepted.stdout)["gate"]["failed"] is False
    assert json.loads(run("models", "list", "--bucket", BUCKET, "--json").stdout)["current"]["name"] == "also-good"

    forced = run("models", "promote", "bad", "1", "--bucket", BUCKET, "--eval", data, "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["gate"]["failed"] is True
    assert json.loads(run("models", "list", "--bucket", BUCKET, "--json").stdout)["current"]["name"] == "bad"
