"""Suspected label errors: images whose folder (label) is probably wrong, found by confident learning
(cleanlab's ``find_label_issues``) from out-of-sample predicted probabilities.

Out-of-sample matters: probabilities of images the model was trained on say what it memorised, not what
the picture shows. ``rcyc eval`` uses the evaluated model's scores on images it did not train on;
``rcyc train`` uses cross-validated probabilities (:mod:`rcyc_cli.train.suspects`).

cleanlab (with scikit-learn, scipy and pandas) is in the ``eval`` extra, not in the light install: without
it the check is left out and the output says how to get it (:data:`INSTALL_HINT`).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Sequence

import numpy as np

from rcyc_core.labels import LABELS

INSTALL_HINT = "pip install 'rcyc[eval]'"
METHOD = "cleanlab.filter.find_label_issues (confident learning, filter_by=prune_by_noise_rate)"
MISSING_NOTE = f"suspected label errors: not checked (cleanlab is not installed; {INSTALL_HINT})"


def available() -> bool:
    return importlib.util.find_spec("cleanlab") is not None


def find_label_issues(labels: Sequence[str], probabilities: np.ndarray) -> list[int]:
    """Indices of the suspected label errors among ``labels`` (given labels, one per row of
    ``probabilities``: n x 5 scores in label order), most suspicious first.

    Rows are normalised to sum to 1 (a one-vs-rest model's scores do not). With fewer than two labels
    present, or fewer images than labels, there is nothing to learn the noise from: no suspects.
    """
    from cleanlab.filter import find_label_issues as cleanlab_find

    index = {label: i for i, label in enumerate(LABELS)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    if len(y) < len(LABELS) or len(set(y.tolist())) < 2:
        return []
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about classes with few examples; the docs say so
        ranked = cleanlab_find(y, probs, filter_by="prune_by_noise_rate",
                               return_indices_ranked_by="self_confidence", n_jobs=1)
    return [int(i) for i in ranked]


def describe(path: str, label: str, scores: dict) -> dict:
    """One suspect as the outputs list it: ``labelled boxes, looks like soda_cans, 99%``."""
    looks_like = max(LABELS, key=lambda name: scores.get(name, 0.0))
    return {"path": path, "label": label, "looks_like": looks_like, "confidence": float(scores.get(looks_like, 0.0)),
            "label_score": float(scores.get(label, 0.0))}


def from_predictions(predictions: list[dict]) -> dict:
    """The ``suspects`` section of an evaluation, over its (out-of-sample) ``predictions``: ``{"checked",
    "method", "images": [describe(...)], ...}``, or ``{"checked": False, "note", "hint"}`` without cleanlab."""
    if not available():
        return {"checked": False, "note": MISSING_NOTE, "hint": INSTALL_HINT, "images": []}
    if not predictions:
        return {"checked": True, "method": METHOD, "images": []}
    probabilities = np.array([[p["scores"].get(label, 0.0) for label in LABELS] for p in predictions])
    issues = find_label_issues([p["true"] for p in predictions], probabilities)
    return {"checked": True, "method": METHOD,
            "images": [describe(predictions[i]["path"], predictions[i]["true"], predictions[i]["scores"]) for i in issues]}
