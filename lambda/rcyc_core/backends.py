"""Inference backends behind one interface.

A backend runs a batch (N, H, W, 3) through every member network of a model and returns the raw outputs,
one array per member. ``scores`` turns those into (N, 5) class scores for either layout. LiteRT runs the
``.tflite`` files (fast to import and load: the function's default); Keras runs the ``.h5`` files directly
and imports TensorFlow only when it is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import ModelError, PrerequisiteError
from .labels import LABELS
from .manifest import Manifest

BACKENDS = ("litert", "keras")
FORMAT_OF = {"litert": "tflite", "keras": "h5"}
PROBE_TOLERANCE = 1e-3  # how far from 1 a member's scores may sum


class Backend(Protocol):
    name: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...


def scores(layout: str, raw: Sequence[np.ndarray]) -> np.ndarray:
    """Raw member outputs -> (N, 5) scores in LABELS order."""
    if layout == "softmax":
        return np.asarray(raw[0], dtype=np.float64)
    # One-vs-rest: column 1 of member i is "this is class i".
    return np.stack([np.asarray(out, dtype=np.float64)[:, 1] for out in raw], axis=1)


def probe_batch(width: int, height: int) -> np.ndarray:
    """Fixed probe inputs in the model's input range (0..1): two noise images, all black, all white."""
    noise = np.random.default_rng(20240611).random((2, height, width, 3), dtype=np.float32)
    flat = np.stack([np.zeros((height, width, 3), np.float32), np.ones((height, width, 3), np.float32)])
    return np.concatenate([noise, flat])


def behaviour_problems(layout: str, raw: Sequence[np.ndarray], rows: int) -> list[str]:
    """What is wrong with these raw outputs for ``rows`` probe inputs, given what the layout promises:
    softmax, one network with 5 non-negative scores summing to 1; one-vs-rest, 5 networks of 2 such scores."""
    members, width = (1, len(LABELS)) if layout == "softmax" else (len(LABELS), 2)
    if len(raw) != members:
        return [f"{len(raw)} network output(s), the {layout} layout has {members}"]
    problems = []
    for index, out in enumerate(raw):
        who = "the network" if layout == "softmax" else f"member {index} ({LABELS[index]})"
        values = np.asarray(out, dtype=np.float64)
        if values.shape != (rows, width):
            problems.append(f"{who} outputs shape {tuple(values.shape[1:])}, {layout} needs ({width},)")
            continue
        if not np.isfinite(values).all():
            problems.append(f"{who} outputs NaN or infinite scores")
            continue
        if values.min() < -PROBE_TOLERANCE or values.max() > 1 + PROBE_TOLERANCE:
            problems.append(f"{who} outputs scores outside 0..1 (from {values.min():.3g} to {values.max():.3g})")
        sums = values.sum(axis=1)
        worst = int(np.abs(sums - 1).argmax())
        if abs(sums[worst] - 1) > PROBE_TOLERANCE:
            problems.append(f"{who}'s scores sum to {sums[worst]:.4g}, not 1 (a last layer without softmax?)")
    return problems


def check_behaviour(manifest: Manifest, backend: "Backend") -> None:
    """Run the probe inputs; ModelError (InvalidModelOutput) unless the outputs are what the layout promises."""
    batch = probe_batch(manifest.input.width, manifest.input.height)
    try:
        raw = backend.run(batch)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model {manifest.name} {manifest.version} fails on a {manifest.input.width}x{manifest.input.height} "
                         f"input: {str(exc).splitlines()[0][:200]}", kind="InvalidModelOutput") from None
    problems = behaviour_problems(manifest.layout, raw, len(batch))
    if problems:
        raise ModelError(
            f"model {manifest.name} {manifest.version} does not behave as a {manifest.layout} model on probe inputs: "
            + "; ".join(problems),
            kind="InvalidModelOutput",
            hint="softmax: one network whose last layer is a 5-way softmax; one-vs-rest: five networks, each a 2-way softmax.",
        )


class LiteRTBackend:
    name = "litert"

    def __init__(self, paths: Sequence[Path]):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise PrerequisiteError(
                "the LiteRT runtime (ai-edge-litert) is not installed",
                hint="pip install ai-edge-litert, or use --backend keras.",
            ) from None
        self._interpreters = []
        for path in paths:
            try:
                interpreter = Interpreter(model_path=str(path))
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{path} is not a loadable .tflite model: {exc}") from None
            outputs = len(interpreter.get_output_details())
            if outputs != 1 or len(interpreter.get_input_details()) != 1:
                raise ModelError(f"{Path(path).name} has {len(interpreter.get_input_details())} input(s) and {outputs} output(s); "
                                 "each network of a model has one of each", kind="InvalidModelOutput")
            self._interpreters.append(interpreter)
        self._batch = [None] * len(self._interpreters)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = []
        for i, interpreter in enumerate(self._interpreters):
            inp = interpreter.get_input_details()[0]
            if self._batch[i] != batch.shape[0]:
                # Resize once per batch size, not per call: warm instances mostly see the same sizes.
                interpreter.resize_tensor_input(inp["index"], list(batch.shape))
                interpreter.allocate_tensors()
                self._batch[i] = batch.shape[0]
                inp = interpreter.get_input_details()[0]
            interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"], copy=False))
            interpreter.invoke()
            out = interpreter.get_output_details()[0]
            outputs.append(np.array(interpreter.get_tensor(out["index"])))
        return outputs


class KerasBackend:
    name = "keras"

    def __init__(self, paths: Sequence[Path]):
        keras = import_keras()
        self._models = []
        for path in paths:
            try:
                self._models.append(keras.models.load_model(str(path), compile=False))
            except Exception as exc:  # Keras raises many types for unreadable files
                raise ModelError(f"{path} is not a loadable Keras model: {exc}".splitlines()[0]) from None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        # Calling the model directly avoids predict()'s per-call dataset setup on small batches.
        return [np.asarray(model(batch, training=False)) for model in self._models]


def import_keras():
    try:
        import logging
        import os

        if not os.environ.get("RCYC_VERBOSE"):
            # TensorFlow's C++ logging, absl's and Keras's Python loggers: quiet unless asked for.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            for name in ("absl", "tensorflow", "keras", "h5py"):
                logging.getLogger(name).setLevel(logging.ERROR)
        import keras
    except ImportError:
        raise PrerequisiteError(
            "TensorFlow/Keras is not installed",
            hint="pip install 'rcyc[keras]' (tensorflow-cpu), or use --backend litert with a packaged model.",
        ) from None
    return keras


def load(manifest: Manifest, directory: Path, backend: str = "litert") -> Backend:
    """Verify the model's files of the backend's format against the manifest, then load them."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}", hint=f"Use one of: {', '.join(BACKENDS)}.")
    loaded = open_paths(backend, manifest.verify_local(directory, FORMAT_OF[backend]))
    check_behaviour(manifest, loaded)
    return loaded


def open_paths(backend: str, paths: Sequence[Path]) -> Backend:
    """Load already-verified model files with the named backend."""
    return LiteRTBackend(paths) if backend == "litert" else KerasBackend(paths)
