"""rcyc train --local-mode: the training image built by the real Docker engine (classic builder, host
network, the CA bundle for pip), run as SageMaker runs it (``docker run IMAGE train``, /opt/ml mounted, no
network). Its model loads in ``rcyc predict`` and scores within a point of ``rcyc train`` on the same data
and seed; the hyperparameters arrive as strings and are honoured; a broken channel writes
/opt/ml/output/failure and exits non-zero; a container killed mid-run and restarted on the same checkpoint
directory resumes (its features come from the checkpoints instead of being computed again)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest

from tests.cli import run
from tests.conftest import CA_BUNDLE, TEST_BASE_IMAGE, drawings, need

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # builds a ~1.9 GB image once (cached after), trains three times
EPOCHS = 7


@pytest.fixture(scope="module")
def training_image(engine):
    from rcyc_cli.train import container

    result = container.build(engine, "rcyc-train:test", base_image=TEST_BASE_IMAGE,
                             ca_bundle=CA_BUNDLE if os.path.isfile(CA_BUNDLE) else None)
    return result.image_id


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-mode")
    drawings().write_folder(root / "data", 12, 1)
    drawings().write_folder(root / "test", 6, 2)
    return root


def test_local_mode_trains_the_same_model_as_rcyc_train(engine, training_image, drawn, tmp_path, monkeypatch):
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow (for rcyc train on this side)")
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "host-cache"))
    local = run("train", drawn / "data", "--out", tmp_path / "local", "--local-mode", "--image", training_image,
                "--checkpoint-dir", tmp_path / "checkpoints", "--seed", "1", "--epochs", EPOCHS, "--json")
    assert local.exit_code == 0, local.stderr
    summary = json.loads(local.stdout)
    assert summary["head"]["epochs_run"] == EPOCHS  # "7" in hyperparameters.json, honoured as 7
    assert summary["features"]["computed"] == 60  # a fresh checkpoint directory: computed in the container
    assert all(path.startswith(str(drawn / "data")) for path, _ in summary["held_out_images"])
    host = run("train", drawn / "data", "--out", tmp_path / "host", "--seed", "1", "--epochs", EPOCHS, "--json")
    assert host.exit_code == 0, host.stderr

    scores = {}
    for which in ("local", "host"):
        evaluation = json.loads(run("eval", drawn / "test", "--model", tmp_path / which, "--json").stdout)
        scores[which] = evaluation["accuracy"]
    assert abs(scores["local"] - scores["host"]) <= 0.01, scores
    image = next((drawn / "test" / "soda_cans").iterdir())
    predicted = run("predict", "--model", tmp_path / "local", image, "--json")
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["results"][0]["label"] in (
        "soda_cans", "crushed_soda_cans", "boxes", "glass_bottles", "plastic_bottles")
    manifest = json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert manifest["layout"] == "softmax" and (tmp_path / "local" / "training.json").is_file()


def test_a_broken_channel_writes_the_failure_and_exits_non_zero(engine, training_image, tmp_path):
    from rcyc_cli.train import container

    data = tmp_path / "data"
    (data / "bottles").mkdir(parents=True)  # not a label
    (data / "bottles" / "a.jpg").write_bytes(b"not even an image")
    staging = container.stage(data, {"epochs": 3}, tmp_path / "checkpoints")
    job = container.start(engine, training_image, staging)
    try:
        status = job.wait(timeout=300)["StatusCode"]
    finally:
        job.remove(force=True)
    failure = (staging.output / "failure").read_text()
    shutil.rmtree(staging.root)
    assert status != 0 and "bottles" in failure and not (tmp_path / "model").exists()

    result = run("train", data, "--out", tmp_path / "model", "--local-mode", "--image", training_image,
                 "--checkpoint-dir", tmp_path / "checkpoints")
    assert result.exit_code == 3 and "the training job failed" in result.stderr and "bottles" in result.stderr
    assert not (tmp_path / "model").exists()


def test_a_killed_job_restarted_on_its_checkpoints_resumes(engine, training_image, tmp_path):
    from rcyc_cli.train import container

    data = tmp_path / "data"
    drawings().write_folder(data, 30, 4)
    checkpoints = tmp_path / "checkpoints"
    staging = container.stage(data, {"epochs": "3", "seed": 4}, checkpoints)
    job = container.start(engine, training_image, staging)
    seen = 0
    try:
        for chunk in job.logs(stream=True, follow=True):
            for line in chunk.decode().splitlines():
                if line.startswith("rcyc features ") and "/" in line:
                    seen = int(line.split()[2].split("/")[0])
            if seen >= 30:
                job.kill()  # SIGKILL, like a reclaimed spot instance: no clean-up runs
                break
    finally:
        job.remove(force=True)
        shutil.rmtree(staging.root)
    assert 30 <= seen < 150, f"killed after {seen} features"
    stored = list((checkpoints / "features").rglob("*.npy"))
    assert len(stored) >= 30

    result = run("train", data, "--out", tmp_path / "model", "--local-mode", "--image", training_image,
                 "--checkpoint-dir", checkpoints, "--epochs", "3", "--seed", "4", "--json")
    assert result.exit_code == 0, result.stderr
    features = json.loads(result.stdout)["features"]
    assert features["cached"] >= 30 and features["computed"] == 150 - features["cached"]
