"""``rcyc predict``: classify local files in-process with the same core the function uses."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rcyc_core import backends
from rcyc_core.inference import Classifier, Item
from rcyc_core.results import empty_response, error_entry

from .models import resolve_model


def choose_backend(requested: str, manifest) -> str:
    if requested != "auto":
        return requested
    return "litert" if manifest.has("tflite") else "keras"


def predict_files(paths: list[Path], model: Path | None = None, backend: str = "auto",
                  status: Callable[[str], None] = lambda message: None) -> dict:
    manifest, directory = resolve_model(model, status)
    chosen = choose_backend(backend, manifest)
    classifier = Classifier(manifest, backends.load(manifest, directory, chosen))
    response = empty_response(manifest.summary())
    items = []
    for index, path in enumerate(paths):
        try:
            items.append(Item(index, None, str(path), Path(path).read_bytes()))
        except OSError as exc:
            response["errors"].append(error_entry(index, None, str(path), "FileNotFound" if isinstance(exc, FileNotFoundError)
                                                  else "UnreadableFile", f"cannot read {path}: {exc.strerror}"))
    results, errors = classifier.classify(items)
    response["results"] = results
    response["errors"] = sorted(response["errors"] + errors, key=lambda entry: entry["record"])
    response["backend"] = chosen
    return response
