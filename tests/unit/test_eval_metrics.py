"""rcyc_cli.evaluate.metrics: hand-checked figures, the edge cases, and properties over generated labels."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcyc_cli.evaluate.metrics import ECE_BINS, Metrics, calibration_bins, compute_metrics, confusion_matrix
from rcyc_core.labels import LABELS

B, G, S, C, P = LABELS  # boxes, glass_bottles, soda_cans, crushed_soda_cans, plastic_bottles


def test_hand_checked_example():
    true = [B, B, B, B, G, G, S, S, S, C]
    pred = [B, B, B, S, G, B, S, S, C, C]
    m = compute_metrics(true, pred)
    assert m.accuracy == pytest.approx(7 / 10)
    assert m.confusion_matrix == [
        [3, 0, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 2, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    boxes = m.per_class[B]
    assert (boxes.precision, boxes.recall, boxes.support) == (pytest.approx(3 / 4), pytest.approx(3 / 4), 4)
    assert boxes.f1 == pytest.approx(0.75)
    soda = m.per_class[S]
    assert soda.precision == pytest.approx(2 / 3) and soda.recall == pytest.approx(2 / 3)
    crushed = m.per_class[C]
    assert crushed.precision == pytest.approx(1 / 2) and crushed.recall == 1.0
    assert crushed.f1 == pytest.approx(2 * 0.5 * 1 / 1.5)
    # plastic bottles: no image and never predicted -> 0 everywhere, and left out of the macro mean
    assert m.per_class[P].to_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    present = [m.per_class[label] for label in (B, G, S, C)]
    assert m.macro.f1 == pytest.approx(sum(c.f1 for c in present) / 4)
    assert m.macro.precision == pytest.approx(sum(c.precision for c in present) / 4)
    assert [(c.true, c.predicted, c.count) for c in m.top_confusions] == [(B, S, 1), (G, B, 1), (S, C, 1)]


def test_a_label_predicted_but_absent_counts_in_the_macro_mean_with_zero_recall():
    m = compute_metrics([B, B], [B, P])
    assert m.per_class[P].precision == 0.0 and m.per_class[P].recall == 0.0
    # boxes: precision 1, recall 1/2, F1 2/3; plastic: 0 -> macro F1 over the two present labels
    assert m.macro.f1 == pytest.approx((2 / 3 + 0) / 2)


def test_top_confusions_most_frequent_first():
    true = [G] * 3 + [B] + [P] * 2
    pred = [P] * 3 + [S] + [G] * 2
    m = compute_metrics(true, pred)
    assert [(c.true, c.predicted, c.count) for c in m.top_confusions] == [(G, P, 3), (P, G, 2), (B, S, 1)]


def test_undefined_ratios_are_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = compute_metrics([], [], [])
        one_sided = compute_metrics([B, B], [G, G], [0.5, 0.5])
    assert empty.accuracy == 0.0 and empty.support == 0 and empty.ece == 0.0
    assert empty.macro.f1 == 0.0
    assert one_sided.per_class[B].precision == 0.0 and one_sided.per_class[G].recall == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same|but"):
        compute_metrics([B], [B, B])
    with pytest.raises(ValueError, match="not one of"):
        compute_metrics(["tin_cans"], [B])
    with pytest.raises(ValueError, match="confidences"):
        compute_metrics([B], [B], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics([B], [B], [float("nan")])


def test_expected_calibration_error_by_hand():
    # two at 0.9 (one right) and two at 0.6 (both right): |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    m = compute_metrics([B, B, G, G], [B, S, G, G], [0.9, 0.9, 0.6, 0.6])
    assert m.ece == pytest.approx(0.4)
    assert sum(b.count for b in m.calibration) == 4 and len(m.calibration) == ECE_BINS
    # without confidences there is no ECE
    assert compute_metrics([B], [B]).ece is None
    # right exactly as often as confident -> 0
    perfect = compute_metrics([B] * 4, [B, B, B, G], [0.75] * 4)
    assert perfect.ece == pytest.approx(0.0, abs=1e-12)


def test_calibration_bins_are_right_inclusive_equal_width():
    bins = calibration_bins([0.0, 1 / 15, 0.2, 0.2000001, 1.0], [True] * 5)
    counts = [b.count for b in bins]
    assert counts[0] == 2  # 0 and exactly 1/15
    assert counts[2] == 1  # exactly 3/15 = 0.2 closes bin 2 ...
    assert counts[3] == 1  # ... and just above it opens bin 3
    assert counts[14] == 1
    assert [b.lower for b in bins][:2] == [0.0, pytest.approx(1 / 15)]


def test_to_dict_is_json_with_the_documented_keys_and_round_trips():
    m = compute_metrics([B, G, S, C, P, P], [B, G, S, C, P, B], [0.9, 0.8, 0.7, 0.95, 0.6, 0.99])
    data = json.loads(json.dumps(m.to_dict()))
    for key in ("accuracy", "confusion_matrix", "labels", "per_class", "macro", "top_confusions", "ece", "support"):
        assert key in data
    assert data["labels"] == list(LABELS)
    assert list(data["per_class"]) == list(LABELS)
    assert len(data["confusion_matrix"]) == 5 and all(len(row) == 5 for row in data["confusion_matrix"])
    assert data["confusion_matrix"][4] == [1, 0, 0, 0, 1]
    assert Metrics.from_dict(data) == m


label_lists = st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS),
                                 st.floats(min_value=0.0, max_value=1.0)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(label_lists)
def test_property_matrix_and_accuracy_are_the_direct_counts(rows):
    """What eval reports is exactly what the predictions say: the matrix is the count of each
    (true, predicted) pair, its rows sum to the supports, its trace over its total is the accuracy."""
    true = [t for t, _, _ in rows]
    pred = [p for _, p, _ in rows]
    conf = [c for _, _, c in rows]
    m = compute_metrics(true, pred, conf)
    pairs = Counter(zip(true, pred))
    matrix = np.array(m.confusion_matrix)
    for i, t in enumerate(LABELS):
        for j, p in enumerate(LABELS):
            assert matrix[i, j] == pairs[(t, p)]
    supports = Counter(true)
    assert [int(x) for x in matrix.sum(axis=1)] == [supports[label] for label in LABELS]
    assert [m.per_class[label].support for label in LABELS] == [supports[label] for label in LABELS]
    assert m.support == len(rows) == int(matrix.sum())
    if rows:
        assert m.accuracy == pytest.approx(np.trace(matrix) / matrix.sum())
        assert m.accuracy == pytest.approx(sum(t == p for t, p in rows_pairs(rows)) / len(rows))
    else:
        assert m.accuracy == 0.0
    for i, label in enumerate(LABELS):
        c = m.per_class[label]
        assert 0.0 <= c.precision <= 1.0 and 0.0 <= c.recall <= 1.0 and 0.0 <= c.f1 <= 1.0
        if supports[label]:
            assert c.recall == pytest.approx(matrix[i, i] / supports[label])
    assert sum(x.count for x in m.top_confusions) == len(rows) - int(np.trace(matrix))
    assert 0.0 <= m.ece <= 1.0


def rows_pairs(rows):
    return [(t, p) for t, p, _ in rows]


def test_confusion_matrix_function_matches_compute_metrics():
    true, pred = [B, G, G, P], [B, G, P, P]
    assert confusion_matrix(true, pred).tolist() == compute_metrics(true, pred).confusion_matrix
