"""``rcyc train --self-check`` and the training line of ``rcyc doctor``: is the backbone the one we think?

Runs the Keras port on the reference photos in ``fixtures/train`` and compares its 1000 ImageNet logits
with the golden logits of the PyTorch reference (``fixtures/train/golden.json``). A wrong padding, a wrong
BatchNorm epsilon or a damaged checkpoint shows up here as a delta of 1e-1 or more; a correct port is
within ~1e-5.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from rcyc_core.errors import PrerequisiteError
from rcyc_core.manifest import sha256_file

TOLERANCE = 1e-4


def reference_dir() -> Path:
    from rcyc_cli.paths import FIXTURES

    return FIXTURES / "train"


def load_golden(directory: Path | None = None) -> dict:
    """{photo file name: {"sha256", "top5", "logits"}} from golden.json, each photo checked by hash."""
    directory = Path(directory) if directory is not None else reference_dir()
    path = directory / "golden.json"
    if not path.is_file():
        raise PrerequisiteError(
            f"the backbone's reference photos are not here ({path} is missing)",
            hint="Run rcyc from its checkout (make setup), which has fixtures/train.",
        )
    photos = json.loads(path.read_text())["photos"]
    for name, record in photos.items():
        photo = directory / name
        if not photo.is_file() or sha256_file(photo) != record["sha256"]:
            raise PrerequisiteError(f"the reference photo {photo} is missing or changed", hint="Restore fixtures/train from git.")
    return photos


def self_check(tolerance: float = TOLERANCE) -> dict:
    """Compare the backbone's ImageNet logits on the reference photos with the golden logits.

    Returns ``{"ok", "tolerance", "max_abs_delta", "photos": [{"photo", "max_abs_delta", "ok",
    "top_class", "golden_top_class"}], "weights_sha256", "seconds"}``. Raises PrerequisiteError when
    TensorFlow, the weights package or the reference photos are missing, ModelError when the weights
    file's sha256 is not the pinned one.
    """
    from rcyc_core.preprocess import InputSpec, preprocess

    from . import backbone, weights

    started = time.perf_counter()
    directory = reference_dir()
    golden = load_golden(directory)
    weights.checkpoint_path()  # a missing or altered checkpoint is its own clear error, before TensorFlow loads
    model = backbone.build_backbone(include_top=True)
    spec = InputSpec(backbone.INPUT_SIZE, backbone.INPUT_SIZE)
    names = sorted(golden)
    batch = np.stack([preprocess((directory / name).read_bytes(), spec) for name in names])
    logits = np.asarray(model(batch, training=False), dtype=np.float64)
    photos = []
    for name, row in zip(names, logits):
        expected = np.asarray(golden[name]["logits"], dtype=np.float64)
        delta = float(np.abs(row - expected).max())
        photos.append(
            {
                "photo": name,
                "max_abs_delta": delta,
                "ok": delta < tolerance,
                "top_class": int(row.argmax()),
                "golden_top_class": int(expected.argmax()),
            }
        )
    worst = max(p["max_abs_delta"] for p in photos)
    return {
        "ok": all(p["ok"] for p in photos),
        "tolerance": tolerance,
        "max_abs_delta": worst,
        "photos": photos,
        "weights_sha256": weights.SHA256,
        "seconds": round(time.perf_counter() - started, 3),
    }
