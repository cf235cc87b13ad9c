"""`rcyc predict` and the CLI's edges, in-process with click's CliRunner."""

import json
import subprocess
import sys

import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.conftest import IMAGES, MODELS, bad_images, class_images, edge_images
from tests.cli import run



@pytest.mark.parametrize("layout", ["one-vs-rest", "softmax"])
def test_each_class_drawing_is_predicted_as_its_class(layout):
    images = class_images()
    result = run("predict", "--json", "--model", MODELS[layout], *[p for _, p in images])
    assert result.exit_code == 0, result.stderr
    response = json.loads(result.stdout)
    assert [r["label"] for r in response["results"]] == [label for label, _ in images]
    assert response["errors"] == [] and response["backend"] == "litert"


def test_edge_images_all_get_a_result():
    result = run("predict", "--json", *edge_images())
    response = json.loads(result.stdout)
    assert result.exit_code == 0 and len(response["results"]) == len(edge_images())


def test_bad_images_are_errors_and_good_ones_still_predicted():
    good = IMAGES / "boxes" / "boxes_0.jpg"
    missing = IMAGES / "nope.jpg"
    result = run("predict", "--json", good, *bad_images(), missing)
    assert result.exit_code == ExitStatus.RECORD_ERRORS
    response = json.loads(result.stdout)
    assert [r["label"] for r in response["results"]] == ["boxes"]
    assert sorted(e["error"] for e in response["errors"]) == ["CorruptImage", "EmptyImage", "FileNotFound", "NotAnImage"]


def test_human_output_shows_a_table_per_image_and_the_top_class():
    result = run("predict", IMAGES / "soda_cans" / "soda_cans_1.jpg")
    assert result.exit_code == 0
    for label in ("boxes", "glass_bottles", "soda_cans", "crushed_soda_cans", "plastic_bottles"):
        assert label in result.stdout
    assert "▶ soda_cans" in result.stdout


def test_not_a_model_is_one_line_with_hint_and_exit_code(tmp_path):
    (tmp_path / "model_0_prime.h5").write_bytes(b"x")
    result = run("predict", "--model", tmp_path, IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == ExitStatus.BAD_INPUT
    lines = result.stderr.splitlines()
    [error] = [line for line in lines if line.startswith("error: ")]
    assert "model_0_prime.h5" in error and any(line.startswith("hint: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_tampered_manifest_file_is_refused(tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(MODELS["softmax"], model)
    (model / "model.tflite").write_bytes((model / "model.tflite").read_bytes()[:-1] + b"\0")
    result = run("predict", "--model", model, IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == ExitStatus.BAD_INPUT and "sha256" in result.stderr


def test_invoke_local_without_emulator_fails_before_starting_anything(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path))
    result = run("invoke-local", "--rie", tmp_path / "no-such-rie")
    assert result.exit_code == ExitStatus.MISSING_PREREQ
    assert "rcyc rie install" in result.stderr


def test_invoke_local_rejects_a_bad_event_file(tmp_path, rie_path):
    bad = tmp_path / "event.json"
    for text in ("{not json", '{"Records": 4}', "[]"):
        bad.write_text(text)
        result = run("invoke-local", "--rie", rie_path, "--event", bad)
        assert result.exit_code == ExitStatus.BAD_INPUT, text
        assert "error: " in result.stderr and "Traceback" not in result.stderr


def test_help_and_predict_do_not_import_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from rcyc_cli.main import cli;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0;"
        f"r = CliRunner().invoke(cli, ['predict', '--json', {str(IMAGES / 'boxes' / 'boxes_0.jpg')!r}]); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'moto')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_config_file_supplies_defaults_below_flags(tmp_path, monkeypatch):
    config = tmp_path / "rcyc.toml"
    config.write_text(f'backend = "keras"\nmodel = "{tmp_path / "missing"}"\n')
    monkeypatch.setenv("RCYC_CONFIG", str(config))
    result = run("predict", "--json", IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == ExitStatus.BAD_INPUT and "missing" in result.stderr  # the file's model was used
    result = run("predict", "--json", "--backend", "litert", "--model", MODELS["softmax"], IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == 0 and json.loads(result.stdout)["backend"] == "litert"  # flags win


def test_doctor_reports_each_check(rie_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result = run("doctor", "--json", "--rie", rie_path)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["Lambda emulator"]["status"] == "ok"
    assert checks["AWS credentials"]["status"] == "missing" and checks["AWS credentials"]["fix"]
    assert result.exit_code == ExitStatus.MISSING_PREREQ


def test_config_file_reaches_subcommands_of_groups(tmp_path, monkeypatch):
    config = tmp_path / "rcyc.toml"
    config.write_text('bucket = "my-private-bucket"\n')
    monkeypatch.setenv("RCYC_CONFIG", str(config))
    for args in (["models", "list", "--help"], ["local", "up", "--help"], ["upload-model", "--help"]):
        result = run(*args)
        assert "my-private-bucket" in result.stdout, args
