"""rcyc train's suspected label errors: cross-validated probabilities of a softmax over the features, then
cleanlab. Synthetic features (no TensorFlow): five clean clusters and two images filed in the wrong folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rcyc_cli.train.samples import Sample
from rcyc_cli.train.suspects import find_suspects
from tests.conftest import LABELS


def clusters(per_label: int, wrong: dict[int, str], seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (5, 32))
    samples, features = [], {}
    for i in range(per_label * 5):
        true = i % 5
        label = wrong.get(i, LABELS[true])
        sha = f"{i:064x}"
        samples.append(Sample(Path(f"{label}/{i}.jpg"), label, sha))
        features[sha] = (centres[true] * 3 + rng.normal(0, 0.5, 32)).astype(np.float32)
    return samples, features


def test_the_images_in_the_wrong_folder_are_the_suspects():
    samples, features = clusters(12, {3: "boxes", 21: "soda_cans"})  # a crushed can and a glass bottle, misfiled
    found = find_suspects(samples, features, seed=0)
    assert found["checked"] and found["folds"] == 5
    assert sorted(s["path"] for s in found["images"]) == ["boxes/3.jpg", "soda_cans/21.jpg"]
    first = {s["path"]: s for s in found["images"]}["boxes/3.jpg"]
    assert first["label"] == "boxes" and first["looks_like"] == "crushed_soda_cans" and first["sha256"] == f"{3:064x}"


def test_too_few_images_per_label_is_not_checked():
    samples, features = clusters(1, {})
    found = find_suspects(samples, features, seed=0)
    assert not found["checked"] and "at least 2 images" in found["note"]
