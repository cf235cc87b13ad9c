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
from .manifest import Manifest

BACKENDS = ("litert", "keras")
FORMAT_OF = {"litert": "tflite", "keras": "h5"}


class Backend(Protocol):
    name: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...


def scores(layout: str, raw: Sequence[np.ndarray]) -> np.ndarray:
    """Raw member outputs -> (N, 5) scores in LABELS order."""
    if layout == "softmax":
        return np.asarray(raw[0], dtype=np.float64)
    # One-vs-rest: column 1 of member i is "this is class i".
    return np.stack([np.asarray(out, dtype=np.float64)[:, 1] for out in raw], axis=1)


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
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
    return open_paths(backend, manifest.verify_local(directory, FORMAT_OF[backend]))


def open_paths(backend: str, paths: Sequence[Path]) -> Backend:
    """Load already-verified model files with the named backend."""
    return LiteRTBackend(paths) if backend == "litert" else KerasBackend(paths)
