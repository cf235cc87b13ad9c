"""Two models on the same images: per-class deltas, the images they disagree on, an exact McNemar test,
and the gate a CI job uses to refuse a model.

Naming: model **A** is the one being evaluated (``rcyc eval --model``), model **B** the reference
(``--against``, e.g. the current model). Every delta is ``A - B``: positive means A is better.

McNemar's test looks only at the images exactly one model gets right: ``b`` = A right and B wrong,
``c`` = A wrong and B right. If the models were equally good, each of those ``n = b + c`` images would
be A's win or B's with probability 1/2, so the exact two-sided p-value is the binomial tail

    p = min(1, 2 * sum_{k <= min(b, c)} C(n, k) / 2^n)

computed here with exact integers (log-space above :data:`EXACT_LIMIT` discordant pairs), no scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rcyc_core.labels import LABELS

from .metrics import Metrics, compute_metrics

ALPHA = 0.05
"""Significance level of the McNemar test and of the gate."""

EXACT_LIMIT = 20_000
"""Up to this many discordant pairs the p-value is computed with exact integers; above, in log-space."""

MAX_DISCORDANT_SEARCH = 1_000_000
"""The estimate of images still needed gives up (``None``) beyond this many discordant pairs."""


def _log_pmf_half(k: int, n: int) -> float:
    """log P(X = k) for X ~ Binomial(n, 1/2)."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)


def mcnemar_exact(b: int, c: int) -> float:
    """The exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs (1.0 when there are none)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts cannot be negative")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    if n <= EXACT_LIMIT:
        term = total = 1  # C(n, 0)
        for i in range(k):
            term = term * (n - i) // (i + 1)  # C(n, i + 1), exact
            total += term
        return min(1.0, (2 * total) / (1 << n))  # int / int is correctly rounded, however large
    logs = [_log_pmf_half(i, n) for i in range(k + 1)]
    top = max(logs)
    log_tail = top + math.log(sum(math.exp(x - top) for x in logs))
    return min(1.0, math.exp(math.log(2) + log_tail))


def _minority(discordant: int, small: int, m: int) -> int:
    """The minority count among ``m`` discordant pairs at the observed share ``small / discordant``, rounded
    half up, in integers."""
    return (2 * small * m + discordant) // (2 * discordant)


def discordant_needed(b: int, c: int, alpha: float = ALPHA, limit: int = MAX_DISCORDANT_SEARCH) -> int | None:
    """The smallest number of discordant pairs ``m >= b + c`` whose exact McNemar p-value is below
    ``alpha`` when the minority side keeps its observed share (``round(m * min(b, c) / (b + c))``).

    ``None`` when no number would do it (no discordant pairs, or ``b == c``: the data show no direction)
    or when it exceeds ``limit``. Walks ``m`` upwards updating the binomial tail in O(1) per step.
    """
    d, small = b + c, min(b, c)
    if d == 0 or b == c:
        return None
    if mcnemar_exact(b, c) < alpha:
        return d
    m, k = d, small
    # P(X_d <= small): exact for small counts; above EXACT_LIMIT the (uncapped, since small < d / 2) log-space p / 2
    tail = _exact_tail(small, d) if d <= EXACT_LIMIT else mcnemar_exact(b, c) / 2
    while m < limit:
        # P(X_{m+1} <= k) = P(X_m <= k) - P(X_m = k) / 2, for X_m ~ Binomial(m, 1/2).
        tail -= math.exp(_log_pmf_half(k, m)) / 2
        m += 1
        target = _minority(d, small, m)
        while k < target:  # the share is <= 1/2, so this moves by at most one
            k += 1
            tail += math.exp(_log_pmf_half(k, m))
        if 2 * tail < alpha:
            return m
    return None


def _exact_tail(k: int, n: int) -> float:
    term = total = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    return total / (1 << n)


def images_needed(b: int, c: int, images: int, alpha: float = ALPHA) -> int | None:
    """How many *more* images (beyond ``images``) the comparison would need for p < ``alpha``.

    Assumption: new images behave like these: the same share of them are discordant (``(b + c) /
    images``) and the discordant ones split in the same direction and proportion (``b : c``). Under it,
    the answer is the smallest total ``N`` whose expected discordant count reaches
    :func:`discordant_needed`, minus ``images``. 0 when the difference is already significant; ``None``
    when no number of such images would make it significant (they never disagree, or ``b == c``) or
    the number is beyond the search limit.
    """
    needed = discordant_needed(b, c, alpha)
    if needed is None or images <= 0:
        return None
    d = b + c
    return max(0, -(-needed * images // d) - images)  # ceil(needed * images / d) - images


@dataclass(frozen=True)
class McNemar:
    a_right_b_wrong: int
    a_wrong_b_right: int
    p_value: float
    alpha: float
    more_images_needed: int | None
    images: int

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def better(self) -> str | None:
        """'a' or 'b' when the difference is significant, else None."""
        if not self.significant:
            return None
        return "a" if self.a_right_b_wrong > self.a_wrong_b_right else "b"

    @property
    def note(self) -> str:
        b, c = self.a_right_b_wrong, self.a_wrong_b_right
        if self.significant:
            return (f"significant (p = {self.p_value:.3g} < {self.alpha}): "
                    f"{'A' if b > c else 'B'} is right on {max(b, c)} of the {b + c} images only one gets right")
        if b + c == 0:
            return "the two models never differ in being right; no number of such images would separate them"
        if b == c:
            return (f"not significant (p = {self.p_value:.3g}): each is right on {b} images the other gets wrong; "
                    "more images alike would not separate them")
        if self.more_images_needed is None:
            return (f"not significant (p = {self.p_value:.3g}); at the observed disagreement rates it would take "
                    f"more than {MAX_DISCORDANT_SEARCH:,} images where only one model is right")
        return (f"not significant (p = {self.p_value:.3g} >= {self.alpha}); at the observed disagreement rates "
                f"about {self.more_images_needed:,} more images would be needed")

    def to_dict(self) -> dict:
        return {"a_right_b_wrong": self.a_right_b_wrong, "a_wrong_b_right": self.a_wrong_b_right,
                "p_value": self.p_value, "alpha": self.alpha, "significant": self.significant,
                "better": self.better, "more_images_needed": self.more_images_needed, "note": self.note}


def mcnemar(a_right: Sequence[bool], b_right: Sequence[bool], alpha: float = ALPHA) -> McNemar:
    """The McNemar test on paired correctness (one entry per image, same order for both models)."""
    if len(a_right) != len(b_right):
        raise ValueError(f"{len(a_right)} answers from A but {len(b_right)} from B")
    b = sum(1 for x, y in zip(a_right, b_right) if x and not y)
    c = sum(1 for x, y in zip(a_right, b_right) if y and not x)
    p = mcnemar_exact(b, c)
    more = None if p < alpha else images_needed(b, c, len(a_right), alpha)
    return McNemar(b, c, p, alpha, 0 if p < alpha else more, len(a_right))


@dataclass(frozen=True)
class Comparison:
    images: int
    metrics_a: Metrics
    metrics_b: Metrics
    mcnemar: McNemar
    both_right: int
    both_wrong: int
    disagreements: list[dict]
    excluded: int = 0
    """Images left out because one of the models could not answer them (broken for it)."""

    def per_class(self) -> dict[str, dict]:
        out = {}
        for label in self.metrics_a.labels:
            a, b = self.metrics_a.per_class[label], self.metrics_b.per_class[label]
            out[label] = {"support": a.support}
            for name in ("precision", "recall", "f1"):
                va, vb = getattr(a, name), getattr(b, name)
                out[label].update({f"{name}_a": va, f"{name}_b": vb, f"{name}_delta": va - vb})
        return out

    def to_dict(self) -> dict:
        a, b = self.metrics_a, self.metrics_b
        return {
            "images": self.images,
            "excluded": self.excluded,
            "accuracy_a": a.accuracy,
            "accuracy_b": b.accuracy,
            "accuracy_delta": a.accuracy - b.accuracy,
            "accuracy_a_ci": a.accuracy_ci,
            "accuracy_b_ci": b.accuracy_ci,
            "macro_f1_a": a.macro.f1,
            "macro_f1_b": b.macro.f1,
            "macro_f1_delta": a.macro.f1 - b.macro.f1,
            "per_class": self.per_class(),
            "agreement": {"both_right": self.both_right, "a_right_b_wrong": self.mcnemar.a_right_b_wrong,
                          "a_wrong_b_right": self.mcnemar.a_wrong_b_right, "both_wrong": self.both_wrong},
            "mcnemar": self.mcnemar.to_dict(),
            "disagreements": self.disagreements,
        }


_ORDER = {"a": 0, "b": 1, "neither": 2}


def compare_predictions(true: Sequence[str], predicted_a: Sequence[str], predicted_b: Sequence[str],
            confidence_a: Sequence[float] | None = None, confidence_b: Sequence[float] | None = None,
            paths: Sequence[str] | None = None, labels: Sequence[str] = LABELS, alpha: float = ALPHA,
            excluded: int = 0) -> Comparison:
    """Compare two models' answers on the same images (plain lists, one entry per image, same order).

    Disagreements are the images whose predicted labels differ, grouped: A right (B wrong), then B
    right, then neither; by path within a group. Each is ``{"path", "true", "right": "a"|"b"|"neither",
    "a": {"label", "confidence"}, "b": {"label", "confidence"}}``.
    """
    n = len(true)
    if not (len(predicted_a) == len(predicted_b) == n):
        raise ValueError("true labels and both models' predictions must have the same length")
    paths = list(paths) if paths is not None else [str(i) for i in range(n)]
    conf_a = list(confidence_a) if confidence_a is not None else [None] * n
    conf_b = list(confidence_b) if confidence_b is not None else [None] * n
    a_right = [t == p for t, p in zip(true, predicted_a)]
    b_right = [t == p for t, p in zip(true, predicted_b)]
    disagreements = []
    for i in range(n):
        if predicted_a[i] != predicted_b[i]:
            right = "a" if a_right[i] else "b" if b_right[i] else "neither"
            disagreements.append({"path": paths[i], "true": true[i], "right": right,
                                  "a": {"label": predicted_a[i], "confidence": conf_a[i]},
                                  "b": {"label": predicted_b[i], "confidence": conf_b[i]}})
    disagreements.sort(key=lambda d: (_ORDER[d["right"]], d["path"]))
    return Comparison(
        images=n,
        metrics_a=compute_metrics(true, predicted_a, confidence_a, labels),
        metrics_b=compute_metrics(true, predicted_b, confidence_b, labels),
        mcnemar=mcnemar(a_right, b_right, alpha),
        both_right=sum(1 for x, y in zip(a_right, b_right) if x and y),
        both_wrong=sum(1 for x, y in zip(a_right, b_right) if not x and not y),
        disagreements=disagreements,
        excluded=excluded,
    )


def compare_evaluations(a: dict, b: dict, alpha: float = ALPHA) -> Comparison:
    """Compare two :func:`rcyc_cli.evaluate.evaluate` outputs of the same dataset, image by image.

    Only images both models answered are compared (matched by ``path``); the rest are counted in
    ``excluded``. Raises ``ValueError`` if the two disagree on an image's true label (not the same data).
    """
    by_path = {p["path"]: p for p in b["predictions"]}
    common = [(p, by_path[p["path"]]) for p in a["predictions"] if p["path"] in by_path]
    for pa, pb in common:
        if pa["true"] != pb["true"]:
            raise ValueError(f"{pa['path']}: true label {pa['true']!r} in one evaluation, {pb['true']!r} in the other")
    every = {p["path"] for p in a["predictions"]} | set(by_path) | {x["path"] for x in a.get("broken", [])} \
        | {x["path"] for x in b.get("broken", [])}
    return compare_predictions(
        true=[pa["true"] for pa, _ in common],
        predicted_a=[pa["predicted"] for pa, _ in common],
        predicted_b=[pb["predicted"] for _, pb in common],
        confidence_a=[pa["confidence"] for pa, _ in common],
        confidence_b=[pb["confidence"] for _, pb in common],
        paths=[pa["path"] for pa, _ in common],
        alpha=alpha,
        excluded=len(every) - len(common),
    )


def gate(metrics: Metrics, min_accuracy: float | None = None, no_worse_than: Metrics | None = None,
         comparison: Comparison | dict | None = None) -> list[str]:
    """The reasons ``metrics`` (model A) fails the bar; an empty list means it passes.

    - ``min_accuracy``: fails when its accuracy is below it (a fraction in [0, 1]).
    - ``no_worse_than`` (the reference model B's metrics) with ``comparison`` (A vs B on the same images,
      a :class:`Comparison` or its ``to_dict()``): fails when B is right on more of the images only one
      of them gets right **and** the exact McNemar test says so at p < :data:`ALPHA`. A lower accuracy
      that the test cannot tell from noise passes (the note says how many more images would decide it).
    - ``no_worse_than`` without ``comparison``: no paired answers, so noise cannot be told from a real
      drop; the rule is then strict: fails on any accuracy lower than the reference's.
    - Any bar with no evaluated image at all fails.
    """
    reasons: list[str] = []
    if min_accuracy is None and no_worse_than is None:
        return reasons
    if metrics.support == 0:
        reasons.append("no image could be evaluated")
        return reasons
    if min_accuracy is not None:
        if not 0 <= min_accuracy <= 1:
            raise ValueError(f"min_accuracy {min_accuracy} is not a fraction in [0, 1]")
        if metrics.accuracy < min_accuracy:
            reasons.append(f"accuracy {metrics.accuracy:.4f} is below the minimum {min_accuracy:.4f} "
                           f"({metrics.correct} of {metrics.support} images right)")
    if no_worse_than is not None:
        if comparison is None:
            if metrics.accuracy < no_worse_than.accuracy:
                reasons.append(f"accuracy {metrics.accuracy:.4f} is lower than the reference's "
                               f"{no_worse_than.accuracy:.4f} (no paired comparison: any drop fails)")
        else:
            test = comparison["mcnemar"] if isinstance(comparison, dict) else comparison.mcnemar.to_dict()
            images = comparison["images"] if isinstance(comparison, dict) else comparison.images
            acc_a = comparison["accuracy_a"] if isinstance(comparison, dict) else comparison.metrics_a.accuracy
            acc_b = comparison["accuracy_b"] if isinstance(comparison, dict) else comparison.metrics_b.accuracy
            if test["significant"] and test["a_wrong_b_right"] > test["a_right_b_wrong"]:
                reasons.append(
                    f"significantly worse than the reference: accuracy {acc_a:.4f} vs {acc_b:.4f} on the same "
                    f"{images} images; the reference is right on {test['a_wrong_b_right']} images this model gets "
                    f"wrong, this model on {test['a_right_b_wrong']} the other gets wrong "
                    f"(exact McNemar p = {test['p_value']:.3g} < {test['alpha']})")
    return reasons
