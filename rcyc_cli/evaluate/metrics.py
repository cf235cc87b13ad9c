"""Classification metrics over plain lists of labels (numpy only, no warnings, no scikit-learn).

:func:`compute_metrics` takes, per image, the true label, the predicted label and (optionally) the
predicted confidence (the top score), and returns a :class:`Metrics`:

- ``accuracy``: correct / images (0 when there are no images), with ``accuracy_ci``: its 95% Wilson score
  interval (:func:`wilson_interval`), what the accuracy could plausibly be on more images like these;
- ``confusion_matrix``: 5x5 counts, ``[true][predicted]``, both axes in ``labels`` order (``LABELS``);
- ``per_class``: precision, recall, F1 and support (true images) per label. A ratio whose denominator
  is 0 is 0 (precision of a label never predicted, recall of a label with no images), without a warning;
- ``macro``: the unweighted mean of precision, recall and F1 over the labels that occur, as a true or
  as a predicted label (what scikit-learn averages over when not given a label list). A label absent
  from the data and never predicted says nothing about the model and does not pull the mean down;
- ``top_confusions``: every off-diagonal cell with a count, most frequent first (ties in label order);
- ``ece``: expected calibration error with :data:`ECE_BINS` (15) equal-width confidence bins over
  [0, 1]. Bin ``i`` holds confidences in ``(i/15, (i+1)/15]`` (the first bin also holds 0).
  ``ECE = sum over bins of (n_bin / n) * |accuracy_bin - mean confidence_bin|``: 0 for a perfectly
  calibrated model, up to 1. ``None`` when no confidences were given; the per-bin figures are kept in
  ``calibration`` (a reliability diagram's data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import math

import numpy as np

from rcyc_core.labels import LABELS

ECE_BINS = 15
Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion ``correct / total`` (95% by default); ``None`` for no images.

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0% and 100%: 24 of 24 right
    gives [86.2%, 100%], not a zero-width interval. (scipy's ``binomtest(...).proportion_ci("wilson")``
    gives the same numbers; the tests check that, scipy is not needed at run time.)
    """
    if total <= 0:
        return None
    if not 0 <= correct <= total:
        raise ValueError(f"{correct} correct out of {total}")
    p, z2 = correct / total, z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z / (1 + z2 / total) * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass(frozen=True)
class Confusion:
    true: str
    predicted: str
    count: int

    def to_dict(self) -> dict:
        return {"true": self.true, "predicted": self.predicted, "count": self.count}


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    accuracy: float
    confidence: float

    def to_dict(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "count": self.count, "accuracy": self.accuracy,
                "confidence": self.confidence}


@dataclass(frozen=True)
class Metrics:
    labels: tuple[str, ...]
    support: int
    correct: int
    accuracy: float
    confusion_matrix: list[list[int]]
    per_class: dict[str, ClassMetrics]
    macro: ClassMetrics
    top_confusions: list[Confusion]
    ece: float | None
    calibration: list[CalibrationBin] = field(default_factory=list)

    @property
    def accuracy_ci(self) -> list[float] | None:
        interval = wilson_interval(self.correct, self.support)
        return None if interval is None else list(interval)

    def to_dict(self) -> dict:
        """JSON-ready: plain floats, ints, lists and dicts; ``per_class`` and matrix rows in label order."""
        return {
            "labels": list(self.labels),
            "support": self.support,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_ci": self.accuracy_ci,
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "per_class": {label: self.per_class[label].to_dict() for label in self.labels},
            "macro": self.macro.to_dict(),
            "top_confusions": [c.to_dict() for c in self.top_confusions],
            "ece": self.ece,
            "ece_bins": ECE_BINS,
            "calibration": [b.to_dict() for b in self.calibration],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Metrics":
        """The inverse of :meth:`to_dict` (e.g. a reference evaluation saved as JSON)."""
        labels = tuple(data["labels"])
        return cls(
            labels=labels,
            support=int(data["support"]),
            correct=int(data.get("correct", round(data["accuracy"] * data["support"]))),
            accuracy=float(data["accuracy"]),
            confusion_matrix=[[int(x) for x in row] for row in data["confusion_matrix"]],
            per_class={label: ClassMetrics(**data["per_class"][label]) for label in labels},
            macro=ClassMetrics(**data["macro"]),
            top_confusions=[Confusion(**c) for c in data.get("top_confusions", [])],
            ece=None if data.get("ece") is None else float(data["ece"]),
            calibration=[CalibrationBin(**b) for b in data.get("calibration", [])],
        )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0 where the denominator is 0 (no warning)."""
    numerator = numerator.astype(float)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _indices(values: Sequence[str], labels: Sequence[str], what: str) -> np.ndarray:
    position = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((position[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as exc:
        raise ValueError(f"{what} label {exc.args[0]!r} is not one of {list(labels)}") from None


def confusion_matrix(true: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> np.ndarray:
    """Counts ``[true][predicted]`` in ``labels`` order, as an int64 array."""
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    t = _indices(true, labels, "true")
    p = _indices(predicted, labels, "predicted")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix


def calibration_bins(confidence: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> list[CalibrationBin]:
    """Equal-width bins over [0, 1]; bin i holds (i/bins, (i+1)/bins], bin 0 also holds 0. Empty bins included."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    if conf.shape != hit.shape:
        raise ValueError(f"{conf.size} confidences for {hit.size} predictions")
    if conf.size and (not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1 + 1e-9):
        raise ValueError("confidences must be finite numbers in [0, 1]")
    # The first edge >= the confidence closes its bin: right-inclusive, and exact at the edges i/bins.
    edges = np.arange(bins + 1) / bins
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    result = []
    for i in range(bins):
        members = index == i
        count = int(members.sum())
        result.append(CalibrationBin(
            lower=i / bins, upper=(i + 1) / bins, count=count,
            accuracy=float(hit[members].mean()) if count else 0.0,
            confidence=float(conf[members].mean()) if count else 0.0))
    return result


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float:
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins))


def compute_metrics(true: Sequence[str], predicted: Sequence[str], confidence: Sequence[float] | None = None,
                    labels: Sequence[str] = LABELS) -> Metrics:
    """All the figures for one model on one set of images (see the module docstring).

    Raises ``ValueError`` when the lists differ in length or hold a label not in ``labels``.
    """
    labels = tuple(labels)
    matrix = confusion_matrix(true, predicted, labels)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    precision = _ratio(tp, predicted_count)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    correct = int(tp.sum())

    present = (support + predicted_count) > 0
    macro = ClassMetrics(
        precision=float(precision[present].mean()) if present.any() else 0.0,
        recall=float(recall[present].mean()) if present.any() else 0.0,
        f1=float(f1[present].mean()) if present.any() else 0.0,
        support=total)

    confusions = [Confusion(labels[i], labels[j], int(matrix[i, j]))
                  for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i, j]]
    confusions.sort(key=lambda c: -c.count)  # stable: ties stay in label order

    ece, bins = None, []
    if confidence is not None:
        if len(confidence) != total:
            raise ValueError(f"{len(confidence)} confidences for {total} predictions")
        hits = [t == p for t, p in zip(true, predicted)]
        bins = calibration_bins(confidence, hits)
        ece = expected_calibration_error(bins)

    return Metrics(
        labels=labels,
        support=total,
        correct=correct,
        accuracy=correct / total if total else 0.0,
        confusion_matrix=matrix.tolist(),
        per_class={label: ClassMetrics(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
                   for i, label in enumerate(labels)},
        macro=macro,
        top_confusions=confusions,
        ece=ece,
        calibration=bins,
    )
