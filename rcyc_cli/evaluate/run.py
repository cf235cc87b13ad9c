"""Run a model over a labelled dataset and gather what ``rcyc eval`` reports (no Click, no rich)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterator

from rcyc_core.errors import InputError
from rcyc_core.labels import LABELS
from rcyc_core.results import RecordError, Result, Skipped

from ..dataset import Dataset
from .compare import ALPHA, compare_evaluations
from .evidence import headline, suspects
from .metrics import compute_metrics

Classify = Callable[[list[Path]], dict]
"""Takes file paths, returns rcyc's result contract for them (``record`` = index into that list)."""

CHUNK_SIZE = 64


def _chunks(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


Entry = Result | RecordError | Skipped


def _entries_by_record(response: dict, count: int) -> Iterator[tuple[int, Entry]]:
    """(record, entry) for every entry of ``response`` that names one of its ``count`` records, parsed
    into the contract's types; the rest (not an object, no such record) is no answer."""
    for section, kind in (("results", Result), ("errors", RecordError), ("skipped", Skipped)):
        for entry in response.get(section) or []:
            record = entry.get("record") if isinstance(entry, dict) else None
            if isinstance(record, int) and not isinstance(record, bool) and 0 <= record < count:
                yield record, kind.from_json(entry)


def _model_identity(model: dict | None) -> tuple:
    model = model or {}
    return model.get("name"), model.get("version"), model.get("sha256")


def run_model(dataset: Dataset, classify: Classify, model_name: str = "",
              progress: Callable[[int], None] = lambda n: None, chunk_size: int = CHUNK_SIZE) -> dict:
    """One model over ``dataset``: the evaluation dict without a comparison (see :func:`evaluate`)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    images = dataset.images
    predictions: list[dict] = []
    broken: list[dict] = []
    model: dict | None = None
    seconds = 0.0
    for start, chunk in _chunks(images, chunk_size):
        paths = [image.path for image in chunk]
        began = time.perf_counter()
        response = classify(paths)
        seconds += time.perf_counter() - began
        if not isinstance(response, dict):
            raise TypeError(f"classify returned {type(response).__name__}, not the result contract (a dict)")
        if model is None:
            model = response.get("model")
        elif _model_identity(response.get("model")) != _model_identity(model):
            # e.g. the bucket's "current" pointer moved while a warm emulator was answering: the figures
            # would mix two models.
            raise InputError(
                f"the model changed during the evaluation: {_describe(model)} then {_describe(response.get('model'))}",
                hint="Run again, or name the model by NAME/VERSION so it cannot move under the run.")
        answered: dict[int, Entry] = {}
        for record, entry in _entries_by_record(response, len(chunk)):
            answered.setdefault(record, entry)
        for offset, image in enumerate(chunk):
            relative = dataset.relative(image.path)
            entry = answered.get(offset)
            if isinstance(entry, Result) and entry.label in LABELS:
                try:
                    predictions.append(_prediction(relative, image.label, entry))
                except (TypeError, ValueError, AttributeError) as exc:
                    broken.append({"path": relative, "error": "InvalidAnswer",
                                   "message": f"unusable confidence or scores in the answer ({exc})"})
            elif isinstance(entry, Result):
                broken.append({"path": relative, "error": "UnknownLabel",
                               "message": f"the model answered {entry.label!r}, not one of the labels"})
            elif isinstance(entry, RecordError):
                broken.append({"path": relative, "error": str(entry.error or "Error"), "message": str(entry.message or "")})
            elif isinstance(entry, Skipped):
                broken.append({"path": relative, "error": "Skipped", "message": str(entry.reason or "")})
            else:
                broken.append({"path": relative, "error": "NoAnswer",
                               "message": "the classifier returned no entry for this image"})
        progress(len(chunk))

    metrics = compute_metrics([p["true"] for p in predictions], [p["predicted"] for p in predictions],
                              [min(1.0, max(0.0, p["confidence"])) for p in predictions])
    misclassified = sorted(
        ({key: p[key] for key in ("path", "true", "predicted", "confidence", "scores")}
         for p in predictions if not p["correct"]),
        key=lambda p: (-p["confidence"], p["path"]))
    model = dict(model or {})
    if model_name:
        model.setdefault("name", model_name)
        model["given_as"] = model_name
    metrics_dict = metrics.to_dict()
    return {
        "model": model,
        "data_dir": str(dataset.root),
        "images": len(images),
        "evaluated": len(predictions),
        "broken": broken,
        "skipped": [{"path": dataset.relative(path), "reason": reason} for path, reason in dataset.skipped],
        "accuracy": metrics.accuracy,
        "confusion_matrix": metrics_dict["confusion_matrix"],
        "labels": list(LABELS),
        "metrics": metrics_dict,
        "misclassified": misclassified,
        "predictions": predictions,
        "seconds": seconds,
        "images_per_second": len(images) / seconds if seconds > 0 else None,
    }


def _prediction(path: str, true: str, entry: Result) -> dict:
    confidence = float(entry.confidence)
    scores = entry.scores or {}
    values = {label: float(scores.get(label, 0.0)) for label in LABELS}
    if not all(math.isfinite(x) for x in (confidence, *values.values())):
        raise ValueError("not a finite number")
    return {"path": path, "true": true, "predicted": entry.label, "confidence": confidence, "scores": values,
            "correct": entry.label == true}


def _describe(model: dict | None) -> str:
    name, version, sha = _model_identity(model)
    return f"{name or '?'} {version or '?'} (sha256 {(sha or '?')[:12]})"


def evaluate(dataset: Dataset, classify: Classify, model_name: str = "",
             progress: Callable[[int], None] = lambda n: None, against: Classify | None = None,
             against_name: str = "", chunk_size: int = CHUNK_SIZE, alpha: float = ALPHA,
             seen: dict[str, dict] | None = None, provenance_checked: bool = False) -> dict:
    """Classify every image of ``dataset`` in chunks of ``chunk_size`` paths and measure the answers.

    ``classify(paths)`` returns rcyc's result contract for those paths (README, "Result contract");
    an image in its ``errors`` or ``skipped`` (or missing from its answer, or with a label that is not
    one of ``LABELS``) is *broken*: listed with its error and left out of the metrics, never fatal.
    ``progress(n)`` is called after each chunk with the number of images it held (an increment; with
    ``against`` the total is twice the dataset's size). ``model_name`` is how the caller named the model
    (e.g. ``current`` or a path); it is kept as ``model.given_as``.

    Returns (paths are relative to ``data_dir``, ``/``-separated)::

        {"model": {"name", "version", "sha256", "given_as"}, "data_dir": str, "images": int, "evaluated": int,
         "broken": [{"path", "error", "message"}], "skipped": [{"path", "reason"}] (files the dataset passed over),
         "accuracy": float, "confusion_matrix": [[int] * 5] * 5 (rows = true, label order), "labels": [...],
         "metrics": Metrics.to_dict(),
         "misclassified": [{"path", "true", "predicted", "confidence", "scores"}] (confidence descending),
         "predictions": [{"path", "true", "predicted", "confidence", "scores", "correct"}] (dataset order),
         "seconds": float (time inside classify), "images_per_second": float | None,
         "against": {<the same keys for the other model>, "comparison": Comparison.to_dict()}  # with against
         "accuracy_ci": [low, high] | None, "leakage": {...}, "suspects": {...}  # see evaluate.evidence
        }

    ``seen`` (relative path -> match, from :func:`rcyc_cli.evaluate.provenance.match`) names the images a
    model here was trained on: every figure (``accuracy``, ``metrics``, the comparison) is then over the
    other images, and ``accuracy`` is None when there are none. ``provenance_checked`` says whether any
    model recorded its training images at all.

    Raises :class:`InputError` when the answers come from different models part-way through.
    """
    result = run_model(dataset, classify, model_name, progress, chunk_size)
    headline(result, seen, provenance_checked)
    suspects(result)
    if against is not None:
        other = run_model(dataset, against, against_name, progress, chunk_size)
        headline(other, seen, provenance_checked)
        other["comparison"] = compare_evaluations(_unseen(result), _unseen(other), alpha).to_dict()
        result["against"] = other
    return result


def _unseen(result: dict) -> dict:
    return {**result, "predictions": [p for p in result["predictions"] if not p.get("seen")]}
