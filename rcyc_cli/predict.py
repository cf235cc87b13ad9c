"""``rcyc predict``: classify local files in-process with the same core the function uses."""

from __future__ import annotations

import os
from pathlib import Path

from rcyc_core import backends
from rcyc_core.config import Config
from rcyc_core.errors import InputError
from rcyc_core.inference import CHUNK_RECORDS, Classifier, Item
from rcyc_core.results import empty_response, error_entry

from .defaults import DEFAULT_BACKEND
from .files import read_regular
from .model_source import resolve_model
from .reporting import SILENT, Reporter


def choose_backend(requested: str, manifest) -> str:
    if requested != "auto":
        return requested
    return "litert" if manifest.has("tflite") else "keras"


class Predictor:
    """One model loaded once, classifying files in-process: ``classify(paths)`` answers with the result
    contract, ``record`` = the index in ``paths``."""

    def __init__(self, manifest, directory: Path, backend: str = DEFAULT_BACKEND):
        self.backend = choose_backend(backend, manifest)
        self.classifier = Classifier(manifest, backends.load(manifest, directory, self.backend))

    def classify(self, paths: list[Path]) -> dict:
        response = empty_response(self.classifier.manifest.summary())
        limit = Config().max_bytes
        # Chunks of the function's size: the backend's per-image cost stays the core's (one batch of
        # hundreds costs a large first allocation), and only one chunk's bytes and inputs are in memory.
        for start in range(0, len(paths), CHUNK_RECORDS):
            items = []
            for index, path in enumerate(paths[start:start + CHUNK_RECORDS], start):
                try:  # regular files only, bounded: never a device (/dev/zero) or a FIFO
                    items.append(Item(index, None, str(path), read_regular(Path(path), limit, what="image")))
                except InputError as exc:
                    kind = "FileNotFound" if not os.path.lexists(path) else "UnreadableFile"
                    response["errors"].append(error_entry(index, None, str(path), kind, exc.message))
            results, errors = self.classifier.classify(items)
            response["results"] += results
            response["errors"] += errors
        response["errors"].sort(key=lambda entry: entry["record"])
        response["backend"] = self.backend
        return response


def load_predictor(model: Path | None = None, backend: str = DEFAULT_BACKEND, report: Reporter = SILENT) -> Predictor:
    manifest, directory = resolve_model(model, report.status)
    return Predictor(manifest, directory, backend)


def predict_files(paths: list[Path], model: Path | None = None, backend: str = DEFAULT_BACKEND,
                  report: Reporter = SILENT) -> dict:
    """Directories and quoted glob patterns expand as invoke-local expands them; a file named as such is a
    record even when it cannot be read (its entry in ``errors`` says why)."""
    from .files import IMAGE_SUFFIXES, expand_images, shown

    files: list[Path] = []
    for path in map(Path, paths):
        files += expand_images([path]) if path.is_dir() or any(ch in str(path) for ch in "*?[") else [path]
    if not files:  # as invoke-local: nothing classified is not a success
        raise InputError(f"no image files in {', '.join(shown(p) for p in paths)}",
                         hint=f"Give image files or a folder of them ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return load_predictor(model, backend, report).classify(files)
