"""The backbone as a cached ``.tflite`` run by LiteRT, and the features of each image, cached on disk by
the image's content hash (a rerun with more photos only computes the new ones)."""


from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from rcyc_core.errors import ImageError, ModelError, PrerequisiteError
from rcyc_core.manifest import sha256_file
from rcyc_core.preprocess import preprocess

from . import backbone, weights

from .samples import SPEC, Progress, Sample, _noop

BACKBONE_TOLERANCE = 1e-4  # max |keras - litert| on the backbone's features before it is cached


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
    from .. import leftovers

    tmp = leftovers.temp_file("train", ".tflite")  # named by its owner: swept if this process is killed
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

