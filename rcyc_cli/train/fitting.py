"""Fitting: the softmax head on cached features, and the optional fine-tuning of the top backbone blocks
(BatchNorm frozen, low learning rate, light augmentation). Deterministic for a seed."""


from __future__ import annotations

from typing import Sequence

import numpy as np

from rcyc_core.labels import LABELS
from rcyc_core.preprocess import preprocess

from . import backbone

from .samples import SPEC, Progress, Sample, _noop

HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-4
FINE_TUNE_BLOCKS = 3
BATCH = 32
FINE_TUNE_BATCH = 16


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

    # Ctrl-C or SIGTERM propagates: an interrupted training exports nothing and exits 130 / 143 (README).
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[Track()])
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
    # Ctrl-C or SIGTERM propagates (nothing is exported).
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

