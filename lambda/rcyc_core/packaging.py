"""Turning Keras files into a packaged model: layout detection, .tflite conversion, parity check and the
manifest. Needs TensorFlow (imported only here and in the Keras backend)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import backends
from .errors import ModelError
from .labels import LABELS
from .manifest import MANIFEST_NAME, PSU_NAMES, FileRef, Manifest, Member, sha256_file
from .preprocess import InputSpec, preprocess

PARITY_TOLERANCE = 1e-4
KERAS_SUFFIXES = (".h5", ".keras")

NOT_A_MODEL_HINT = (
    "Give a directory with manifest.json, a .h5/.keras file with a 5-way output, or a directory with "
    "the five Portland State files model_0_prime.h5 … model_4_prime.h5."
)


def source_files(path: Path) -> tuple[str, list[Path]]:
    """(layout, Keras files) of an unpackaged model path; ModelError if it is neither layout."""
    path = Path(path)
    if path.is_file() and path.suffix in KERAS_SUFFIXES:
        return "softmax", [path]
    if path.is_dir():
        psu = [path / name for name in PSU_NAMES]
        if all(p.is_file() for p in psu):
            return "one-vs-rest", psu
        found = sorted(p.name for p in path.iterdir() if p.suffix in KERAS_SUFFIXES)
        if found:
            raise ModelError(f"{path} holds {', '.join(found[:5])} but not the five model_N_prime.h5 files", hint=NOT_A_MODEL_HINT)
    if not path.exists():
        raise ModelError(f"{path} does not exist", hint=NOT_A_MODEL_HINT)
    raise ModelError(f"{path} is not a model rcyc knows", hint=NOT_A_MODEL_HINT)


def convert_to_tflite(model) -> bytes:
    import io

    import tensorflow as tf

    # The converter prints its SavedModel summary on stdout: never on stdout (--json), on stderr only with
    # RCYC_VERBOSE.
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        converted = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    if os.environ.get("RCYC_VERBOSE"):
        sys.stderr.write(summary.getvalue())
    return converted


def package(
    source: Path,
    out_dir: Path,
    name: str | None = None,
    version: str | None = None,
    samples: Sequence[bytes] = (),
) -> Manifest:
    """Validate a Keras model of either layout, convert it to .tflite, check parity, write the manifest.

    Writes the .h5 copies, the .tflite files and manifest.json into ``out_dir`` and returns the manifest.
    ``samples`` are image files' bytes for the parity check; random inputs are added so a check always runs.
    """
    if not os.environ.get("RCYC_VERBOSE"):
        # oneDNN's notice is TensorFlow's only log line on import that TF_CPP_MIN_LOG_LEVEL cannot hide; the
        # plain kernels give the same results for packaging (the parity check compares against LiteRT anyway).
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    keras = backends.import_keras()
    layout, files = source_files(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    members, models, spec = [], [], None
    for index, file in enumerate(files):
        try:
            model = keras.models.load_model(str(file), compile=False)
        except Exception as exc:
            raise ModelError(f"{file} does not load as a Keras model: {str(exc).splitlines()[0][:200]}", hint=NOT_A_MODEL_HINT) from None
        member_spec = _input_spec(model, file)
        if spec is not None and member_spec != spec:
            raise ModelError(f"{file} takes {member_spec.width}x{member_spec.height} input, the others {spec.width}x{spec.height}")
        spec = member_spec
        want = len(LABELS) if layout == "softmax" else 2
        outputs = model.output_shape
        if not (isinstance(outputs, tuple) and len(outputs) == 2 and outputs[-1] == want):
            raise ModelError(f"{file} has output shape {outputs}, a {layout} member needs (None, {want})", hint=NOT_A_MODEL_HINT)
        h5_name = file.name if layout == "one-vs-rest" else "model.h5" if file.suffix == ".h5" else "model.keras"
        if file.resolve() != (out_dir / h5_name).resolve():
            shutil.copyfile(file, out_dir / h5_name)
        tflite_name = Path(h5_name).with_suffix(".tflite").name
        (out_dir / tflite_name).write_bytes(convert_to_tflite(model))
        members.append(
            Member(
                None if layout == "softmax" else LABELS[index],
                {
                    "h5": FileRef(h5_name, sha256_file(out_dir / h5_name)),
                    "tflite": FileRef(tflite_name, sha256_file(out_dir / tflite_name)),
                },
            )
        )
        models.append(model)
    if version is None:
        joined = "".join(m.files["h5"].sha256 for m in members)
        version = hashlib.sha256(joined.encode()).hexdigest()[:12]
    manifest = Manifest(name or _default_name(source), version, layout, spec, tuple(members))
    report = parity(manifest, out_dir, samples)
    if not report.ok:
        raise ModelError(
            f"the .tflite conversion disagrees with Keras: {report.describe()}",
            kind="ParityError",
            hint="The model uses an operation LiteRT converts differently; use --backend keras.",
        )
    manifest.write(out_dir)
    return manifest


def _input_spec(model, file: Path) -> InputSpec:
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3 and shape[1] and shape[2]):
        raise ModelError(f"{file} takes input {shape}, rcyc needs (None, height, width, 3) images", hint=NOT_A_MODEL_HINT)
    return InputSpec(width=int(shape[2]), height=int(shape[1]))


def _default_name(source: Path) -> str:
    source = Path(source)
    return (source.stem if source.is_file() else source.resolve().name) or "model"


@dataclass(frozen=True)
class ParityReport:
    images: int
    max_abs_diff: float
    label_mismatches: int

    @property
    def ok(self) -> bool:
        return self.label_mismatches == 0 and self.max_abs_diff <= PARITY_TOLERANCE

    def describe(self) -> str:
        return (
            f"{self.images} inputs, max |keras - litert| = {self.max_abs_diff:.2e} "
            f"(limit {PARITY_TOLERANCE:.0e}), {self.label_mismatches} different top labels"
        )


def parity(manifest: Manifest, directory: Path, samples: Sequence[bytes] = ()) -> ParityReport:
    """Run Keras (.h5) and LiteRT (.tflite) on the same inputs (sample images, plus noise) and compare."""
    spec = manifest.input
    noise = np.random.default_rng(0).random((4, spec.height, spec.width, 3), dtype=np.float32)
    arrays = [preprocess(data, spec) for data in samples]
    batch = np.concatenate([np.stack(arrays), noise]) if arrays else noise
    keras_scores = backends.scores(manifest.layout, backends.load(manifest, directory, "keras").run(batch))
    lite_scores = backends.scores(manifest.layout, backends.load(manifest, directory, "litert").run(batch))
    return ParityReport(
        images=len(batch),
        max_abs_diff=float(np.abs(keras_scores - lite_scores).max()),
        label_mismatches=int((keras_scores.argmax(1) != lite_scores.argmax(1)).sum()),
    )


def resolve(path: Path, cache_root: Path, samples: Sequence[bytes] = ()) -> tuple[Manifest, Path]:
    """A local model path -> (manifest, directory holding its files).

    A directory with manifest.json is used as it is; bare Keras files are packaged once into
    ``cache_root/<hash of their bytes>`` and reused from there on later runs.
    """
    path = Path(path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return Manifest.load(path), path
    _, files = source_files(path)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    target = Path(cache_root) / digest.hexdigest()[:24]
    if (target / MANIFEST_NAME).is_file():
        return Manifest.load(target), target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Package into a temp dir and rename, so an interrupted run never leaves a half-written cache entry.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    try:
        package(path, staging, name=_default_name(path), samples=samples)
        staging.rename(target)
    except OSError:
        if not (target / MANIFEST_NAME).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Manifest.load(target), target
