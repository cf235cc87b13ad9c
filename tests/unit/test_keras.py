"""The Keras backend, conversion and parity (needs TensorFlow), and model validation errors."""

import json

import numpy as np
import pytest

from rcyc_core import backends
from rcyc_cli.exit_status import ExitStatus
from rcyc_core.manifest import Manifest
from tests.conftest import MODELS, class_images, edge_images
from tests.cli import run

pytestmark = pytest.mark.keras


@pytest.mark.parametrize("layout", ["one-vs-rest", "softmax"])
def test_keras_and_litert_agree_on_every_fixture_image(layout, tensorflow_available):
    images = [p for _, p in class_images()] + edge_images()
    keras_run = run("predict", "--json", "--backend", "keras", "--model", MODELS[layout], *images)
    lite_run = run("predict", "--json", "--backend", "litert", "--model", MODELS[layout], *images)
    assert keras_run.exit_code == lite_run.exit_code == 0, keras_run.stderr + lite_run.stderr
    keras_results, lite_results = json.loads(keras_run.stdout)["results"], json.loads(lite_run.stdout)["results"]
    assert json.loads(keras_run.stdout)["backend"] == "keras"
    for k, lite in zip(keras_results, lite_results):
        assert k["label"] == lite["label"]
        assert max(abs(k["scores"][c] - lite["scores"][c]) for c in k["scores"]) <= 1e-4


@pytest.mark.slow  # TensorFlow conversion of five models
def test_bare_portland_state_directory_works_as_it_is(psu_bare_dir, isolated_cache, tensorflow_available):
    images = [p for _, p in class_images()]
    result = run("predict", "--json", "--model", psu_bare_dir, *images)
    assert result.exit_code == 0, result.stderr
    response = json.loads(result.stdout)
    assert [r["label"] for r in response["results"]] == [label for label, _ in class_images()]
    assert response["backend"] == "litert"  # packaged (converted) once, into the cache
    [packaged] = list((isolated_cache / "rcyc" / "models").iterdir())
    manifest = Manifest.load(packaged)
    assert manifest.layout == "one-vs-rest" and manifest.input.width == 128 and manifest.has("tflite")
    assert not (psu_bare_dir / "manifest.json").exists()  # the user's directory is left as it was


def test_single_h5_file_is_the_softmax_layout(tmp_path, isolated_cache, tensorflow_available):
    result = run("predict", "--json", "--model", MODELS["softmax"] / "model.h5", class_images()[0][1])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["label"] == class_images()[0][0]


def test_wrong_output_shape_is_not_a_layout(tmp_path, isolated_cache, tensorflow_available):
    # A member of the one-vs-rest layout (2 outputs) given as a single model: not a 5-way softmax.
    result = run("predict", "--model", MODELS["one-vs-rest"] / "model_0_prime.h5", class_images()[0][1])
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert "output shape" in result.stderr and "hint:" in result.stderr


def test_garbage_h5_is_refused(tmp_path, isolated_cache, tensorflow_available):
    import h5py  # comes with TensorFlow: imported here so that the module collects (and skips) without it

    with h5py.File(tmp_path / "model.h5", "w") as f:
        f["x"] = np.zeros(3)
    result = run("predict", "--model", tmp_path / "model.h5", class_images()[0][1])
    assert result.exit_code == ExitStatus.BAD_INPUT and "does not load as a Keras model" in result.stderr


def test_parity_check_catches_a_wrong_conversion(tensorflow_available):
    from rcyc_core import packaging
    from rcyc_core.manifest import Member

    samples = [path.read_bytes() for _, path in class_images()]
    manifest = Manifest.load(MODELS["one-vs-rest"])
    assert packaging.parity(manifest, MODELS["one-vs-rest"], samples).ok
    # Swap the .tflite files of the first two members: each .h5 is now paired with another network.
    first, second = manifest.members[:2]
    swapped = (Member(first.label, {**first.files, "tflite": second.files["tflite"]}),
               Member(second.label, {**second.files, "tflite": first.files["tflite"]}))
    broken = Manifest(manifest.name, manifest.version, manifest.layout, manifest.input, swapped + manifest.members[2:])
    report = packaging.parity(broken, MODELS["one-vs-rest"], samples)
    assert not report.ok and report.max_abs_diff > 1e-2


def test_keras_backend_loads_both_layouts(tensorflow_available):
    for layout, members in (("softmax", 1), ("one-vs-rest", 5)):
        manifest = Manifest.load(MODELS[layout])
        backend = backends.load(manifest, MODELS[layout], "keras")
        raw = backend.run(np.zeros((2, manifest.input.height, manifest.input.width, 3), np.float32))
        assert len(raw) == members and backends.scores(layout, raw).shape == (2, 5)
