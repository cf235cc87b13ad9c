"""Suspected label errors in a training folder, before anything is trained on them.

Every image gets an out-of-sample probability from cross-validation on the cached backbone features: a
multinomial logistic regression (scikit-learn's; the same softmax-over-features model as rcyc's head,
without dropout) is fitted on all folds but one and predicts the one left out, in ``k`` rounds
(cleanlab's ``estimate_cv_predicted_probabilities``, stratified folds, seeded). Those probabilities go to
cleanlab's ``find_label_issues`` (:mod:`rcyc_cli.evaluate.suspects`). A few seconds for thousands of images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rcyc_core.labels import LABELS

from ..evaluate import suspects as common
from .samples import Sample

MAX_FOLDS = 5


def find_suspects(samples: Sequence[Sample], features: dict[str, np.ndarray], seed: int) -> dict:
    """``{"checked", "method", "folds", "images": [{"path", "label", "looks_like", "confidence", "label_score",
    "sha256"}]}`` (most suspicious first), or ``{"checked": False, "note", "hint"}`` without cleanlab or
    with too few images (every label needs two, for two folds)."""
    if not common.available():
        return {"checked": False, "note": common.MISSING_NOTE, "hint": common.INSTALL_HINT, "images": []}
    counts = [sum(s.label == label for s in samples) for label in LABELS]
    folds = min(MAX_FOLDS, min(counts)) if counts else 0
    if folds < 2:
        return {"checked": False, "note": "suspected label errors: not checked (every label needs at least 2 images)",
                "images": []}
    import warnings

    from cleanlab.count import estimate_cv_predicted_probabilities
    from sklearn.linear_model import LogisticRegression

    index = {label: i for i, label in enumerate(LABELS)}
    x = np.stack([features[s.sha256] for s in samples]).astype(np.float64)
    y = np.array([index[s.label] for s in samples], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on tiny folds
        probabilities = estimate_cv_predicted_probabilities(x, y, clf=LogisticRegression(max_iter=500), cv_n_folds=folds,
                                                            seed=seed)
    issues = common.find_label_issues([s.label for s in samples], probabilities)
    images = []
    for i in issues:
        scores = {label: float(probabilities[i, j]) for j, label in enumerate(LABELS)}
        images.append({**common.describe(str(samples[i].path), samples[i].label, scores), "sha256": samples[i].sha256})
    return {"checked": True, "method": f"{common.METHOD} on {folds}-fold cross-validated logistic regression "
                                       "over the backbone features", "folds": folds, "images": images}
