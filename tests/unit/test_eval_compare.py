"""rcyc_cli.evaluate.compare: the exact McNemar test, the images-needed estimate, deltas and the gate."""

from __future__ import annotations

import json
from fractions import Fraction
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rcyc_cli.evaluate.compare as compare_module
from rcyc_cli.evaluate.compare import (ALPHA, compare_evaluations, compare_predictions, discordant_needed, gate,
                                       images_needed, mcnemar, mcnemar_exact)
from rcyc_cli.evaluate.metrics import compute_metrics
from rcyc_core.labels import LABELS

B, G, S, C, P = LABELS


def reference_p(b: int, c: int) -> Fraction:
    n = b + c
    return min(Fraction(1), 2 * Fraction(sum(comb(n, k) for k in range(min(b, c) + 1)), 2 ** n))


def test_known_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == 2 / 64  # 0.03125: six one-sided disagreements are enough
    assert mcnemar_exact(0, 5) == 2 / 32  # 0.0625: five are not
    assert mcnemar_exact(3, 10) == 756 / 8192
    assert mcnemar_exact(5, 5) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_exact_p_matches_the_binomial_formula_and_is_symmetric(b, c):
    p = mcnemar_exact(b, c)
    assert p == float(reference_p(b, c))
    assert p == mcnemar_exact(c, b)
    assert 0.0 < p <= 1.0


@pytest.mark.parametrize("b,c", [(300, 420), (1000, 1090), (5000, 5001), (0, 1500)])
def test_log_space_agrees_with_exact_integers(monkeypatch, b, c):
    exact = mcnemar_exact(b, c)
    monkeypatch.setattr(compare_module, "EXACT_LIMIT", 10)
    approx = mcnemar_exact(b, c)
    assert approx == pytest.approx(exact, rel=1e-9, abs=1e-300)


def brute_force_needed(b: int, c: int, cap: int, alpha: float = ALPHA) -> int | None:
    """The first m (up to cap) whose exact p, with the minority share rounded half up, is below alpha."""
    d, small = b + c, min(b, c)
    for m in range(d, cap + 1):
        k = (2 * small * m + d) // (2 * d)
        if 2 * sum(comb(m, i) for i in range(k + 1)) < alpha * 2 ** m:
            return m
    return None


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30))
def test_discordant_needed_is_the_first_count_with_p_below_alpha(b, c):
    if b == c:
        assert discordant_needed(b, c) is None
        return
    cap = 400
    expected = brute_force_needed(b, c, cap)
    found = discordant_needed(b, c)
    if expected is None:
        assert found is None or found > cap
    else:
        assert found == expected


def test_images_needed():
    # already significant
    assert images_needed(0, 6, 100) == 0
    # 1 vs 0 among 24 images: 6 one-sided discordant pairs are needed, one per 24 images -> 144 images
    assert images_needed(1, 0, 24) == 120
    # no direction, or no disagreement: no number of such images helps
    assert images_needed(4, 4, 50) is None
    assert images_needed(0, 0, 50) is None
    # the estimate grows as the two sides get closer
    assert images_needed(10, 14, 200) < images_needed(10, 12, 200)


def test_compare_predictions_deltas_and_disagreements():
    true = [B, B, G, G, S, S]
    a = [B, B, G, P, S, C]  # 4 right
    b = [B, G, G, G, C, C]  # 3 right
    cmp = compare_predictions(true, a, b, [0.9] * 6, [0.8] * 6, paths=[f"f{i}.jpg" for i in range(6)])
    assert cmp.images == 6
    assert cmp.mcnemar.a_right_b_wrong == 2  # f1, f4
    assert cmp.mcnemar.a_wrong_b_right == 1  # f3
    assert (cmp.both_right, cmp.both_wrong) == (2, 1)
    # f5: both answer crushed_soda_cans (both wrong, same answer) -> not a disagreement
    assert [(d["path"], d["right"]) for d in cmp.disagreements] == [("f1.jpg", "a"), ("f4.jpg", "a"), ("f3.jpg", "b")]
    first = cmp.disagreements[0]
    assert first == {"path": "f1.jpg", "true": B, "right": "a", "a": {"label": B, "confidence": 0.9},
                     "b": {"label": G, "confidence": 0.8}}
    data = json.loads(json.dumps(cmp.to_dict()))
    assert data["accuracy_delta"] == pytest.approx(4 / 6 - 3 / 6)
    ma, mb = compute_metrics(true, a), compute_metrics(true, b)
    for label in LABELS:
        row = data["per_class"][label]
        assert row["f1_delta"] == pytest.approx(ma.per_class[label].f1 - mb.per_class[label].f1)
        assert row["recall_delta"] == pytest.approx(ma.per_class[label].recall - mb.per_class[label].recall)
    assert data["mcnemar"]["significant"] is False and data["mcnemar"]["better"] is None
    assert "more images" in data["mcnemar"]["note"]


def test_both_wrong_with_different_answers_is_a_disagreement_in_the_last_group():
    cmp = compare_predictions([B, B], [S, B], [G, C], paths=["x", "y"])
    assert [(d["path"], d["right"]) for d in cmp.disagreements] == [("y", "a"), ("x", "neither")]


def prediction(path, true, predicted, confidence=0.9):
    return {"path": path, "true": true, "predicted": predicted, "confidence": confidence,
            "scores": {label: 0.0 for label in LABELS}, "correct": true == predicted}


def test_compare_evaluations_uses_only_images_both_answered():
    a = {"predictions": [prediction("1", B, B), prediction("2", G, G), prediction("3", S, C)], "broken": [
        {"path": "4", "error": "CorruptImage", "message": ""}]}
    b = {"predictions": [prediction("1", B, G), prediction("3", S, S), prediction("4", P, P)], "broken": [
        {"path": "2", "error": "Timeout", "message": ""}]}
    cmp = compare_evaluations(a, b)
    assert cmp.images == 2 and cmp.excluded == 2
    assert (cmp.mcnemar.a_right_b_wrong, cmp.mcnemar.a_wrong_b_right) == (1, 1)
    b["predictions"][0]["true"] = S
    with pytest.raises(ValueError, match="true label"):
        compare_evaluations(a, b)


def test_mcnemar_on_paired_correctness():
    test = mcnemar([True] * 8 + [False] * 2, [False] * 8 + [True] * 2)
    assert (test.a_right_b_wrong, test.a_wrong_b_right) == (8, 2)
    assert test.p_value == pytest.approx(float(reference_p(8, 2)))
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


# --- the gate -------------------------------------------------------------------------------------------

def metrics_with_accuracy(right: int, total: int):
    return compute_metrics([B] * total, [B] * right + [G] * (total - right))


def test_gate_min_accuracy():
    m = metrics_with_accuracy(8, 10)
    assert gate(m) == []
    assert gate(m, min_accuracy=0.8) == []
    reasons = gate(m, min_accuracy=0.85)
    assert len(reasons) == 1 and "0.8000" in reasons[0] and "0.8500" in reasons[0]
    with pytest.raises(ValueError):
        gate(m, min_accuracy=85)


def test_gate_no_worse_than_fails_only_on_a_significant_drop():
    true = [B] * 40
    reference = [B] * 40
    # candidate wrong on 10 images the reference gets right, right on none it gets wrong: p ~ 0.002
    candidate = [G] * 10 + [B] * 30
    cmp = compare_predictions(true, candidate, reference)
    worse = gate(cmp.metrics_a, no_worse_than=cmp.metrics_b, comparison=cmp)
    assert len(worse) == 1 and "significantly worse" in worse[0] and "McNemar" in worse[0]
    assert gate(cmp.metrics_a, no_worse_than=cmp.metrics_b, comparison=cmp.to_dict()) == worse
    # a lower accuracy the test cannot tell from noise passes
    slightly = [G] * 2 + [B] * 38
    cmp2 = compare_predictions(true, slightly, reference)
    assert cmp2.metrics_a.accuracy < cmp2.metrics_b.accuracy and not cmp2.mcnemar.significant
    assert gate(cmp2.metrics_a, no_worse_than=cmp2.metrics_b, comparison=cmp2) == []
    # significantly *better* passes
    cmp3 = compare_predictions(true, reference, candidate)
    assert cmp3.mcnemar.significant and cmp3.mcnemar.better == "a"
    assert gate(cmp3.metrics_a, no_worse_than=cmp3.metrics_b, comparison=cmp3) == []


def test_gate_without_a_paired_comparison_is_strict():
    lower, higher = metrics_with_accuracy(38, 40), metrics_with_accuracy(39, 40)
    reasons = gate(lower, no_worse_than=higher)
    assert len(reasons) == 1 and "lower than the reference" in reasons[0]
    assert gate(higher, no_worse_than=lower) == []
    assert gate(lower, no_worse_than=lower) == []


def test_gate_with_nothing_evaluated_fails():
    empty = compute_metrics([], [])
    assert gate(empty, min_accuracy=0.0) == ["no image could be evaluated"]
    assert gate(empty) == []
