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

Ctrl-C: a KeyboardInterrupt during the head or fine-tune epochs stops training and exports the best
checkpoint so far (the summary says ``interrupted``); one before any epoch completed, or during the
export, removes the partial directory and propagates. ``out_dir`` is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from rcyc_core.errors import ImageError, InputError, ModelError, PrerequisiteError
from rcyc_core.labels import LABELS
from rcyc_core.manifest import sha256_file
from rcyc_core.preprocess import InputSpec, preprocess

from . import backbone, require, weights

Progress = Callable[[str, int, int, dict], None]
"""``progress(stage, done, total, info)``: called as each stage advances. Stages, in order: ``scan``,
``backbone``, ``features``, ``head`` (done = epochs finished; info has loss, accuracy, val_loss,
val_accuracy), ``fine_tune`` (same), ``export``. It may raise KeyboardInterrupt (it is how a caller's
Ctrl-C lands mid-stage in tests)."""

SPEC = InputSpec(backbone.INPUT_SIZE, backbone.INPUT_SIZE)
DEFAULT_EPOCHS = 40
DEFAULT_FINE_TUNE_EPOCHS = 3
FINE_TUNE_BLOCKS = 3
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-4
BATCH = 32
FINE_TUNE_BATCH = 16
BACKBONE_TOLERANCE = 1e-4  # max |keras - litert| on the backbone's features before it is cached
PARITY_SAMPLES = 4


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    sha256: str


def _noop(stage: str, done: int, total: int, info: dict) -> None:
    pass


def default_cache_root() -> Path:
    from rcyc_cli.paths import cache_dir

    return cache_dir() / "train"


# --------------------------------------------------------------------------------------------- scan


def _pairs(images: Iterable[Any]) -> list[tuple[Path, str]]:
    """(path, label) pairs from tuples or from objects with ``.path`` and ``.label`` (dataset entries)."""
    out = []
    for item in images:
        if hasattr(item, "path") and hasattr(item, "label"):
            path, label = item.path, item.label
        else:
            path, label = item
        out.append((Path(path), str(label)))
    return out


def scan(images: Iterable[Any], progress: Progress = _noop) -> tuple[list[Sample], list[dict], int]:
    """(samples, skipped, duplicates): hash each image, refuse unknown labels, drop duplicate content.

    ``images`` as :func:`train` takes them. The same bytes under two paths would otherwise land in both
    splits (the held-out score would then measure memory); the same bytes under two labels is an error.
    """
    pairs = _pairs(images)
    unknown = sorted({label for _, label in pairs if label not in LABELS})
    if unknown:
        raise InputError(f"unknown label(s) {', '.join(unknown)}", hint=f"Labels are: {', '.join(LABELS)}.")
    samples: list[Sample] = []
    seen: dict[str, Sample] = {}
    skipped: list[dict] = []
    duplicates = 0
    for i, (path, label) in enumerate(pairs):
        if not path.is_file():
            skipped.append({"path": str(path), "reason": "not a regular file"})
        else:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                skipped.append({"path": str(path), "reason": f"unreadable ({exc.strerror or exc})"})
            else:
                first = seen.get(digest)
                if first is None:
                    seen[digest] = sample = Sample(path, label, digest)
                    samples.append(sample)
                elif first.label != label:
                    raise InputError(
                        f"{path} ({label}) and {first.path} ({first.label}) are the same image with two labels",
                        hint="Remove one of them, or fix its label folder.",
                    )
                else:
                    duplicates += 1
        progress("scan", i + 1, len(pairs), {})
    return samples, skipped, duplicates


def split(samples: Sequence[Sample], val_split: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, held out): per label, the ``round(n * val_split)`` images (at least one when the label
    has two or more and val_split > 0) whose keyed hash sha256(seed, content hash) is lowest.

    Stratified and seeded, independent of file names and order, and stable as photos are added.
    """
    if not 0.0 <= val_split < 1.0:
        raise InputError(f"the held-out fraction must be in [0, 1), not {val_split}", hint="Use e.g. --val-split 0.2.")
    train, held = [], []
    counts = {label: [s for s in samples if s.label == label] for label in LABELS}
    empty = [label for label, group in counts.items() if not group]
    if empty:
        raise InputError(
            f"no usable images for {', '.join(empty)} "
            f"({', '.join(f'{label}: {len(group)}' for label, group in counts.items())})",
            hint="Every one of the five labels needs photos; see docs/train.md for how many.",
        )
    for label, group in counts.items():
        ranked = sorted(group, key=lambda s: hashlib.sha256(f"{seed}:{s.sha256}".encode()).hexdigest())
        n_val = round(len(ranked) * val_split)
        if val_split > 0 and len(ranked) >= 2:
            n_val = min(max(n_val, 1), len(ranked) - 1)
        held += ranked[:n_val]
        train += ranked[n_val:]
    return train, held


# ------------------------------------------------------------------------------------ the backbone


def backbone_key() -> str:
    """Identity of the converted backbone: the weights' sha256, the port's version and the input size."""
    text = f"{weights.SHA256}:{backbone.PORT_VERSION}:{backbone.INPUT_SIZE}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def backbone_tflite(cache_root: Path, progress: Progress = _noop) -> tuple[Path, bool]:
    """(path of the converted feature extractor, whether it came from the cache).

    A cached file is used only if its sha256 matches the one recorded when it was made; a new conversion
    is checked against the Keras port on the reference photos (and noise) before it is cached.
    """
    key = backbone_key()
    path = Path(cache_root) / f"backbone-{key}.tflite"
    record = path.with_suffix(".json")
    progress("backbone", 0, 1, {"key": key})
    try:
        recorded = json.loads(record.read_text())["sha256"]
        if path.is_file() and sha256_file(path) == recorded:
            progress("backbone", 1, 1, {"key": key, "cached": True})
            return path, True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from rcyc_core.packaging import convert_to_tflite

    model = backbone.build_backbone(include_top=False)
    data = convert_to_tflite(model)
    probe = _probe_batch()
    fd, tmp = tempfile.mkstemp(suffix=".tflite")
    os.close(fd)
    try:
        Path(tmp).write_bytes(data)
        lite = _Extractor(Path(tmp)).run(probe)
    finally:
        os.unlink(tmp)
    delta = float(np.abs(lite - np.asarray(model(probe, training=False))).max())
    if not delta <= BACKBONE_TOLERANCE:
        raise ModelError(f"the converted backbone differs from the Keras port by {delta:.2e} (limit {BACKBONE_TOLERANCE:.0e})")
    try:
        _write_atomic(path, data)
        _write_atomic(record, json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "max_abs_delta": delta}).encode())
    except OSError as exc:
        raise PrerequisiteError(
            f"cannot write the training cache in {cache_root} ({exc.strerror or exc})",
            hint="Set RCYC_CACHE_HOME to a writable directory.",
        ) from None
    progress("backbone", 1, 1, {"key": key, "cached": False, "max_abs_delta": delta})
    return path, False


def _probe_batch() -> np.ndarray:
    from rcyc_cli.paths import FIXTURES

    arrays = [preprocess(p.read_bytes(), SPEC) for p in sorted((FIXTURES / "train").glob("*.png"))]
    noise = np.random.default_rng(0).random((2, *arrays[0].shape) if arrays else (2, 224, 224, 3), dtype=np.float32)
    return np.concatenate([np.stack(arrays), noise]) if arrays else noise


class _Extractor:
    """The LiteRT backbone, one image at a time (batching does not help on 2 cores)."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=min(4, os.cpu_count() or 1))
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for image in batch:
            self._interpreter.set_tensor(self._input, image[None].astype(np.float32, copy=False))
            self._interpreter.invoke()
            out.append(np.array(self._interpreter.get_tensor(self._output)[0]))
        return np.stack(out)


def extract_features(
    samples: Sequence[Sample], cache_root: Path, progress: Progress = _noop, backbone_path: Path | None = None
) -> tuple[dict[str, np.ndarray], list[dict], dict]:
    """(content hash -> 1280 features, skipped images, stats) for every sample, cached by content hash.

    ``backbone_path``: the converted backbone (``backbone_tflite``), made or fetched here when not given.
    """
    if backbone_path is None:
        path, cached_backbone = backbone_tflite(cache_root, progress)
    else:
        path, cached_backbone = backbone_path, None
    folder = Path(cache_root) / "features" / backbone_key()
    extractor = None
    features: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    computed = cached = 0
    for i, sample in enumerate(samples):
        file = folder / sample.sha256[:2] / f"{sample.sha256}.npy"
        vector = _load_vector(file)
        if vector is not None:
            cached += 1
        else:
            try:
                array = preprocess(sample.path.read_bytes(), SPEC)
            except ImageError as exc:
                skipped.append({"path": str(sample.path), "reason": exc.message})
                progress("features", i + 1, len(samples), {"computed": computed, "cached": cached})
                continue
            except OSError as exc:
                skipped.append({"path": str(sample.path), "reason": f"unreadable ({exc.strerror or exc})"})
                progress("features", i + 1, len(samples), {"computed": computed, "cached": cached})
                continue
            extractor = extractor or _Extractor(path)
            vector = extractor.run(array[None])[0]
            try:
                buffer = _npy_bytes(vector)
                _write_atomic(file, buffer)
            except OSError:
                pass  # a read-only cache costs speed on the next run, not this one
            computed += 1
        features[sample.sha256] = vector
        progress("features", i + 1, len(samples), {"computed": computed, "cached": cached})
    stats = {"computed": computed, "cached": cached}
    if cached_backbone is not None:
        stats["backbone_cached"] = cached_backbone
    return features, skipped, stats


def _npy_bytes(vector: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, vector.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _load_vector(file: Path) -> np.ndarray | None:
    try:
        vector = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vector.shape != (backbone.FEATURES,) or vector.dtype != np.float32 or not np.isfinite(vector).all():
        return None
    return vector


# ------------------------------------------------------------------------------------------ training


def _seed(seed: int) -> None:
    from rcyc_core.backends import import_keras

    import_keras().utils.set_random_seed(seed)


def _loss_accuracy(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    return float(-np.log(p).mean()), float((probs.argmax(1) == y).mean())


def train_head(
    x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, epochs: int, seed: int, progress: Progress = _noop
) -> dict:
    """Fit softmax(features @ W + b) with Adam; keep the epoch with the lowest held-out loss (the train
    loss when nothing is held out). Returns kernel, bias, best_epoch, epochs_run, history, interrupted."""
    from rcyc_core.backends import import_keras

    keras = import_keras()
    _seed(seed)
    inputs = keras.Input((x.shape[1],), name="features")
    dropped = keras.layers.Dropout(0.2, name="feature_dropout")(inputs)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="head")(dropped)
    model = keras.Model(inputs, outputs, name="rcyc_head")
    model.compile(optimizer=keras.optimizers.Adam(HEAD_LEARNING_RATE), loss="sparse_categorical_crossentropy")
    state = {"best": None, "best_loss": np.inf, "best_epoch": 0, "history": [], "interrupted": False}

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss, acc = _loss_accuracy(np.asarray(model(x, training=False)), y)
            val_loss, val_acc = _loss_accuracy(np.asarray(model(x_val, training=False)), y_val) if len(y_val) else (None, None)
            score = loss if val_loss is None else val_loss
            if score < state["best_loss"]:
                kernel, bias = model.get_layer("head").get_weights()
                state.update(best=(kernel.copy(), bias.copy()), best_loss=score, best_epoch=epoch + 1)
            info = {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc}
            state["history"].append(info)
            progress("head", epoch + 1, epochs, info)

    try:
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[Track()])
    except KeyboardInterrupt:
        if state["best"] is None:
            raise
        state["interrupted"] = True
    kernel, bias = state["best"]
    return {
        "kernel": kernel,
        "bias": bias,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(state["history"]),
        "history": state["history"],
        "interrupted": state["interrupted"],
    }


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light augmentation on preprocessed images: horizontal flip, a crop of 80-100% resized back,
    brightness x0.8-1.2. The crop's resize is bilinear, as rcyc's preprocessing is."""
    import tensorflow as tf

    size = batch.shape[1]
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        if rng.random() < 0.5:
            image = image[:, ::-1]
        side = int(round(size * rng.uniform(0.8, 1.0)))
        top, left = rng.integers(0, size - side + 1, 2)
        crop = image[top : top + side, left : left + side]
        image = tf.image.resize(crop, (size, size), method="bilinear").numpy() if side != size else crop
        out[i] = np.clip(image * rng.uniform(0.8, 1.2), 0.0, 1.0)
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _load_batch(samples: Sequence[Sample]) -> np.ndarray:
    return np.stack([preprocess(s.path.read_bytes(), SPEC) for s in samples])


def _predict(model, samples: Sequence[Sample]) -> np.ndarray:
    out = [np.asarray(model(_load_batch(samples[i : i + BATCH]), training=False)) for i in range(0, len(samples), BATCH)]
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)))


def fine_tune_model(
    model, train: Sequence[Sample], held: Sequence[Sample], epochs: int, seed: int, progress: Progress = _noop
) -> dict:
    """Train the top blocks of ``model`` (backbone + head) end to end; keep the best held-out epoch.

    Images are decoded per batch (memory stays flat whatever the dataset size). The model as it comes in
    (head trained, backbone untouched) is epoch 0, so fine-tuning never leaves a worse model than the head.
    Returns best_epoch, epochs_run, history, interrupted; ``model`` holds the best weights afterwards.
    """
    from rcyc_core.backends import import_keras

    keras = import_keras()
    _seed(seed)
    trainable = backbone.set_fine_tunable(model, FINE_TUNE_BLOCKS)
    model.compile(optimizer=keras.optimizers.Adam(FINE_TUNE_LEARNING_RATE), loss="sparse_categorical_crossentropy")
    index = {label: i for i, label in enumerate(LABELS)}
    y_held = np.array([index[s.label] for s in held], dtype=np.int64)
    rng = np.random.default_rng(seed)

    def score() -> tuple[float, float | None]:
        if not len(held):
            return np.inf, None
        return _loss_accuracy(_predict(model, held), y_held)

    best_loss, best_acc = score()
    head_only_acc = best_acc
    best_weights, best_epoch = [w.copy() for w in model.get_weights()], 0
    history: list[dict] = []
    interrupted = False
    steps = (len(train) + FINE_TUNE_BATCH - 1) // FINE_TUNE_BATCH
    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(train))
            losses = []
            for step in range(steps):
                chosen = [train[i] for i in order[step * FINE_TUNE_BATCH : (step + 1) * FINE_TUNE_BATCH]]
                x = _augment(_load_batch(chosen), rng)
                y = np.array([index[s.label] for s in chosen], dtype=np.int64)
                losses.append(float(np.asarray(model.train_on_batch(x, y)).reshape(-1)[0]))
            val_loss, val_acc = score()
            # Without held-out images there is nothing to select on: keep the last epoch.
            if not len(held) or val_loss < best_loss:
                best_weights, best_epoch, best_loss, best_acc = [w.copy() for w in model.get_weights()], epoch, val_loss, val_acc
            info = {"loss": float(np.mean(losses)), "val_loss": val_loss if len(held) else None, "val_accuracy": val_acc}
            history.append(info)
            progress("fine_tune", epoch, epochs, info)
    except KeyboardInterrupt:
        interrupted = True
    model.set_weights(best_weights)
    return {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "history": history,
        "interrupted": interrupted,
        "trainable_layers": len(trainable),
        "head_only_val_accuracy": head_only_acc,
        "val_accuracy": best_acc,
    }


# ----------------------------------------------------------------------------------- the whole thing


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


def train(
    images: Iterable[Any],
    out_dir: Path,
    *,
    name: str = "rcyc-efficientnet-lite0",
    version: str | None = None,
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    fine_tune: bool = False,
    fine_tune_epochs: int = DEFAULT_FINE_TUNE_EPOCHS,
    val_split: float = 0.2,
    progress: Progress | None = None,
    cache_root: Path | None = None,
) -> dict:
    """Train a five-class model on labelled images and write it, packaged, to ``out_dir``.

    ``images``: (path, label) pairs, or objects with ``.path`` and ``.label`` (``load_dataset(root).images``).
    ``fine_tune`` adds the fine-tuning stage (``--fine-tune``) for ``fine_tune_epochs`` epochs. ``version`` defaults to the
    packager's (a hash of the .h5). ``cache_root`` holds the converted backbone and the feature cache
    (default: ``<rcyc cache>/train``). Returns a plain dict (see docs/train.md): counts, seconds per
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
    _check_target(out_dir)
    _remove_stale_partials(out_dir)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    mark = time.perf_counter()
    pairs = _pairs(images)
    samples, skipped, duplicates = scan(pairs, progress)
    seconds["scan"] = time.perf_counter() - mark

    mark = time.perf_counter()
    backbone_path, backbone_cached = backbone_tflite(cache_root, progress)
    seconds["backbone"] = time.perf_counter() - mark

    mark = time.perf_counter()
    features, bad, feature_stats = extract_features(samples, cache_root, progress, backbone_path)
    skipped += bad
    usable = [s for s in samples if s.sha256 in features]
    seconds["features"] = time.perf_counter() - mark

    train_set, held = split(usable, val_split, seed)
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
    }
    mark = time.perf_counter()
    samples_bytes = [s.path.read_bytes() for s in (held or train_set)[:PARITY_SAMPLES]]
    manifest = export(model, out_dir, name=name, version=version, samples=samples_bytes, training=summary, progress=progress)
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
        with tempfile.TemporaryDirectory(prefix="rcyc-train-") as tmp:
            source = Path(tmp) / "model.h5"
            model.save(str(source), include_optimizer=False)  # fine-tuning's Adam state would double the file
            progress("export", 1, 3, {"step": "package"})
            manifest = package(source, partial, name=name, version=version, samples=samples)
        if training is not None:
            provenance = {k: v for k, v in training.items() if k not in ("held_out_images", "out_dir", "images")}
            provenance["images"] = {k: v for k, v in training["images"].items() if k != "skipped"}
            (partial / "training.json").write_text(json.dumps(provenance, indent=2, default=float) + "\n")
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
