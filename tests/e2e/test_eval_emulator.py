"""rcyc eval --via emulator: the same images through the real Lambda emulator pool give the same figures as
the in-process core."""

from __future__ import annotations

import json

import pytest

from tests.cli import run
from tests.conftest import FIXTURES, MODELS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("layout", ["one-vs-rest", "softmax"])
def test_the_emulator_gives_the_same_matrix_as_the_core(rie_path, monkeypatch, layout):
    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    runs = {via: run("eval", FIXTURES / "eval", "--model", MODELS[layout], "--via", via, "--json") for via in ("predict", "emulator")}
    for via, result in runs.items():
        assert result.exit_code == 0, (via, result.stderr)
    predict, emulator = (json.loads(runs[via].stdout) for via in ("predict", "emulator"))
    assert emulator["via"] == "emulator" and emulator["evaluated"] == predict["evaluated"] > 0
    assert emulator["confusion_matrix"] == predict["confusion_matrix"]
    assert emulator["accuracy"] == predict["accuracy"]
    assert sorted(b["path"] for b in emulator["broken"]) == sorted(b["path"] for b in predict["broken"])
    assert emulator["model"]["sha256"] == predict["model"]["sha256"]


def test_each_call_leaves_no_image_in_the_embedded_s3(rie_path, monkeypatch):
    """The store holds one call's images at a time: 200 MB of photos must not stay in memory for the run."""
    import contextlib

    from rcyc_cli.evaluate.targets import through_emulator
    from rcyc_cli.local.emulator.s3 import EmbeddedS3

    monkeypatch.setenv("RCYC_RIE", str(rie_path))
    photos = sorted((FIXTURES / "images").glob("*/*_[0-9].jpg"))[:3]
    with contextlib.ExitStack() as stack:
        classify = through_emulator(MODELS["softmax"], stack, instances=1)
        for _ in range(2):
            response = classify(photos)
            assert len(response["results"]) == len(photos), response
            left = [key for key in EmbeddedS3._backend().get_bucket("rcyc-eval").keys if not key.startswith("models/")]
            assert left == [], left
