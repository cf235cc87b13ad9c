"""The training core behind ``rcyc train``: labelled images -> a packaged five-class model directory.

Stages (each reported through the ``progress`` callback, see :data:`Progress`):

1. ``scan``: hash every image (sha256 of its bytes), drop exact duplicates, check the labels.
2. ``backbone``: the EfficientNet-Lite0 feature extractor as a ``.tflite`` run by LiteRT (~5-10 ms per
   image against ~100 ms in Keras), converted once and cached under rcyc's cache directory, keyed by the
   weights' sha256 and the port's version, and checked against the Keras port before it is cached.
3. ``features``: each image decoded by rcyc's one preprocessing (``rcyc_core.preprocess``) and run
   through the backbone; the 1280 features are cached on disk by the image's content hash, so a rerun
   with more photos only computes the new ones. Images that do not decode are skipped (and reported).
4. split: stratified and seeded, by a keyed hash of each image's content, so adding photos moves at most
   a few images between the splits. The held-out images are never trained on.
5. ``head``: a softmax Dense over the features (seconds); the epoch with the best held-out loss is kept.
6. ``fine_tune`` (optional): the top blocks of the backbone are unfrozen (BatchNorm stays frozen) and
   trained end to end with a low learning rate and light augmentation (flip, crop, brightness) on the
   decoded images; the best held-out epoch is kept, the head-only model counting as epoch 0.
7. ``export``: the full Keras model (224x224x3 in [0, 1] -> 5 softmax scores) saved as ``.h5`` and
   packaged by ``rcyc_core.packaging.package`` (``.h5`` + ``.tflite`` + ``manifest.json`` with sha256s,
   Keras/LiteRT parity checked) into a hidden partial directory beside ``out_dir``, which is renamed into
   place only once complete.

Ctrl-C or SIGTERM (a KeyboardInterrupt) anywhere stops training, exports nothing, removes the partial
directory and propagates (the CLI exits 130 / 143). ``out_dir`` is never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rcyc_core.errors import InputError, PrerequisiteError
from rcyc_core.labels import LABELS

from ..defaults import DEFAULT_EPOCHS, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_MODEL_NAME, DEFAULT_SEED, DEFAULT_VAL_SPLIT
from ..evaluate import provenance
from ..evaluate import suspects as label_check
from . import backbone, require, weights

from .features import backbone_tflite, extract_features
from .fitting import _loss_accuracy, _softmax, fine_tune_model, train_head
from .samples import Progress, Sample, _noop, _pairs, default_cache_root, scan, split
from .suspects import find_suspects

PARITY_SAMPLES = 4


def _partial_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.partial-"


def _remove_stale_partials(out_dir: Path) -> None:
    """Partial directories of this target left by a killed run (their pid is gone)."""
    pattern = re.compile(re.escape(_partial_prefix(out_dir)) + r"(\d+)-[0-9a-f]+")
    try:
        entries = list(out_dir.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(
            f"{out_dir} already exists and is not an empty directory",
            hint="Give a new --out directory: rcyc never overwrites a trained model.",
        )


def _holds_out_some(samples: Sequence[Sample], val_split: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """The split, when it holds out at least one image: a model with no held-out image has no measured
    accuracy, and training it anyway would be a quiet non-answer (exit 0, no report)."""
    train_set, held = split(samples, val_split, seed)
    if not held:
        raise InputError(f"--val-split {val_split} of {len(samples)} usable images holds out none, so the model "
                         "could not be evaluated", hint="Add images (two per label at least), or raise --val-split.")
    return train_set, held


def train(
    images: Iterable[Any],
    out_dir: Path,
    *,
    name: str = DEFAULT_MODEL_NAME,
    version: str | None = None,
    seed: int = DEFAULT_SEED,
    epochs: int = DEFAULT_EPOCHS,
    fine_tune: bool = False,
    fine_tune_epochs: int = DEFAULT_FINE_TUNE_EPOCHS,
    val_split: float = DEFAULT_VAL_SPLIT,
    progress: Progress | None = None,
    cache_root: Path | None = None,
    exclude_suspects: bool = False,
    data_dir: Path | str = "",
) -> dict:
    """Train a five-class model on labelled images and write it, packaged, to ``out_dir``.

    ``images``: (path, label) pairs, or objects with ``.path`` and ``.label`` (``load_dataset(root).images``).
    ``fine_tune`` adds the fine-tuning stage (``--fine-tune``) for ``fine_tune_epochs`` epochs. ``version`` defaults to the
    packager's (a hash of the .h5). ``cache_root`` holds the converted backbone and the feature cache
    (default: ``<rcyc cache>/train``). Suspected label errors are found on cross-validated probabilities
    (``suspects`` in the summary, needs cleanlab); ``exclude_suspects`` leaves them out of training and
    held-out images. The manifest records the provenance of every training and held-out image
    (:mod:`rcyc_cli.evaluate.provenance`; ``data_dir``'s name is kept). Returns a plain dict (see docs/train.md): counts, seconds per
    stage, accuracies, the manifest summary and the held-out (path, label) list for ``rcyc eval``.

    Raises InputError (bad labels, a label without images, out_dir taken), PrerequisiteError (TensorFlow
    or the weights missing), ModelError (a conversion that fails its checks), KeyboardInterrupt (Ctrl-C
    with nothing complete to keep).
    """
    progress = progress or _noop
    out_dir = Path(out_dir)
    if epochs < 1 or (fine_tune and fine_tune_epochs < 1):
        raise InputError(f"epochs must be >= 1 (got {epochs}, fine-tune {fine_tune_epochs})")
    require()
    if exclude_suspects and not label_check.available():  # say so before minutes of feature extraction
        raise PrerequisiteError(label_check.MISSING_NOTE, hint=label_check.INSTALL_HINT)
    _check_target(out_dir)
    _remove_stale_partials(out_dir)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    mark = time.perf_counter()
    pairs = _pairs(images)
    samples, skipped, duplicates = scan(pairs, progress)
    seconds["scan"] = time.perf_counter() - mark
    _holds_out_some(samples, val_split, seed)  # before the backbone and the features: the cheap refusal first

    mark = time.perf_counter()
    backbone_path, backbone_cached = backbone_tflite(cache_root, progress)
    seconds["backbone"] = time.perf_counter() - mark

    mark = time.perf_counter()
    features, bad, feature_stats = extract_features(samples, cache_root, progress, backbone_path)
    skipped += bad
    usable = [s for s in samples if s.sha256 in features]
    seconds["features"] = time.perf_counter() - mark

    mark = time.perf_counter()
    suspects = find_suspects(usable, features, seed)
    if exclude_suspects:
        if not suspects["checked"]:
            raise (PrerequisiteError if "hint" in suspects else InputError)(
                suspects["note"], hint=suspects.get("hint") or "Add images, or train without --exclude-suspects.")
        flagged = {entry["sha256"] for entry in suspects["images"]}
        usable = [s for s in usable if s.sha256 not in flagged]
    seconds["suspects"] = time.perf_counter() - mark

    train_set, held = _holds_out_some(usable, val_split, seed)  # again: broken images may have left too few
    index = {label: i for i, label in enumerate(LABELS)}

    def arrays(group: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([features[s.sha256] for s in group]) if group else np.zeros((0, backbone.FEATURES), np.float32)
        return x, np.array([index[s.label] for s in group], dtype=np.int64)

    x, y = arrays(train_set)
    x_val, y_val = arrays(held)
    mark = time.perf_counter()
    head = train_head(x, y, x_val, y_val, epochs, seed, progress)
    seconds["head"] = time.perf_counter() - mark
    interrupted = "head" if head["interrupted"] else None

    # The head on the LiteRT features is the exported model's computation (to ~1e-5), without a Keras pass.
    val_accuracy = _loss_accuracy(_softmax(x_val @ head["kernel"] + head["bias"]), y_val)[1] if held else None

    mark = time.perf_counter()
    model = backbone.build_classifier(head["kernel"], head["bias"])
    seconds["build"] = time.perf_counter() - mark
    tuned = None
    if fine_tune and not interrupted:
        mark = time.perf_counter()
        tuned = fine_tune_model(model, train_set, held, fine_tune_epochs, seed, progress)
        seconds["fine_tune"] = time.perf_counter() - mark
        interrupted = "fine_tune" if tuned["interrupted"] else None
        val_accuracy = tuned["val_accuracy"]

    summary = {
        "out_dir": str(out_dir),
        "images": {
            "given": len(pairs),
            "used": len(usable),
            "train": len(train_set),
            "held_out": len(held),
            "duplicates": duplicates,
            "skipped": skipped,
            "per_label": {
                label: {"train": sum(s.label == label for s in train_set), "held_out": sum(s.label == label for s in held)}
                for label in LABELS
            },
        },
        "features": feature_stats,
        "seed": seed,
        "val_split": val_split,
        "head": {k: head[k] for k in ("best_epoch", "epochs_run", "history")},
        "fine_tune": None if tuned is None else {k: v for k, v in tuned.items() if k != "interrupted"},
        "val_accuracy": val_accuracy,
        "interrupted": interrupted,
        "backbone": {
            "name": "efficientnet-lite0",
            "weights_sha256": weights.SHA256,
            "port_version": backbone.PORT_VERSION,
            "cached": backbone_cached,
        },
        "held_out_images": [(str(s.path), s.label) for s in held],
        "suspects": {**suspects, "excluded": exclude_suspects,
                     "images": [{k: v for k, v in e.items() if k != "sha256"} for e in suspects["images"]]},
    }
    mark = time.perf_counter()
    samples_bytes = [s.path.read_bytes() for s in (held or train_set)[:PARITY_SAMPLES]]
    backbone_id = {k: v for k, v in summary["backbone"].items() if k != "cached"}
    seen = provenance.record([(s.path, "train", s.sha256) for s in train_set] + [(s.path, "held_out", s.sha256) for s in held],
                             data_dir, seed, backbone_id)
    manifest = export(model, out_dir, name=name, version=version, samples=samples_bytes, training=summary, progress=progress,
                      provenance=seen)
    seconds["export"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    summary["manifest"] = manifest.summary()
    return summary


def export(
    model,
    out_dir: Path,
    *,
    name: str,
    version: str | None = None,
    samples: Sequence[bytes] = (),
    training: dict | None = None,
    progress: Progress = _noop,
    provenance: dict | None = None,
):
    """Save ``model`` as .h5, package it (``rcyc_core.packaging.package``) into a partial directory and
    rename that into ``out_dir`` once complete. Returns the manifest. Anything raised (Ctrl-C included)
    removes the partial directory; ``out_dir`` is never left half-written and never overwritten."""
    from rcyc_core.packaging import package

    out_dir = Path(out_dir)
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f"{_partial_prefix(out_dir)}{os.getpid()}-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        progress("export", 0, 3, {"step": "save"})
        from .. import leftovers

        tmp = leftovers.temp_dir("train")  # named by its owner: the next command sweeps it if this one is killed
        try:
            source = tmp / "model.h5"
            model.save(str(source), include_optimizer=False)  # fine-tuning's Adam state would double the file
            progress("export", 1, 3, {"step": "package"})
            manifest = package(source, partial, name=name, version=version, samples=samples)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if provenance is not None:
            manifest = dataclasses.replace(manifest, provenance=provenance)
            manifest.write(partial)
        if training is not None:
            written = {k: v for k, v in training.items() if k not in ("held_out_images", "out_dir", "images", "suspects")}
            written["images"] = {k: v for k, v in training["images"].items() if k != "skipped"}
            (partial / "training.json").write_text(json.dumps(written, indent=2, default=float) + "\n")
        progress("export", 2, 3, {"step": "publish"})
        try:
            os.replace(partial, out_dir)
        except OSError:
            raise InputError(
                f"{out_dir} appeared while training (another run?); the new model was not written over it",
                hint="Give a new --out directory.",
            ) from None
        progress("export", 3, 3, {"step": "done"})
        return manifest
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

