"""Classification metrics against values worked out by hand (and scikit-learn's definitions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidet.errors import ParameterError
from minidet.train.metrics import (accuracy, auc, confusion_matrix, evaluate, matthews_corrcoef,
                                   optimal_threshold, roc_curve)


def test_roc_curve_small_example():
    # scikit-learn's documented example: fpr [0 0 .5 .5 1], tpr [0 .5 .5 1 1]
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    fpr, tpr, thr = roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert np.isinf(thr[0])
    np.testing.assert_allclose(thr[1:], [0.8, 0.4, 0.35, 0.1])
    assert auc(fpr, tpr) == pytest.approx(0.75)


def test_roc_curve_ties_give_one_point():
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.5, 0.5, 0.2, 0.9, 0.5])
    fpr, tpr, thr = roc_curve(y, s)
    np.testing.assert_allclose(thr[1:], [0.9, 0.5, 0.2])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])


def test_perfect_and_inverted_scores():
    y = np.array([0] * 5 + [1] * 5)
    s = np.linspace(0, 1, 10)
    fpr, tpr, _ = roc_curve(y, s)
    assert auc(fpr, tpr) == pytest.approx(1.0)
    fpr, tpr, _ = roc_curve(y, 1 - s)
    assert auc(fpr, tpr) == pytest.approx(0.0)


def test_optimal_threshold_midpoint_and_miniml():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.05, 0.1, 0.2, 0.7, 0.8, 0.9])
    fpr, tpr, thr = roc_curve(y, s)
    # miniML's choice: the lowest event score; midpoint: halfway to the highest non-event score
    assert optimal_threshold(fpr, tpr, thr) == pytest.approx(0.7)
    assert optimal_threshold(fpr, tpr, thr, midpoint=True) == pytest.approx(0.45)
    # clipped into a usable detection threshold
    s2 = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert optimal_threshold(*roc_curve(y, s2)) == pytest.approx(0.99)


def test_confusion_accuracy_mcc():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    cm = confusion_matrix(y, p)
    assert cm.tolist() == [[3, 1], [1, 3]]
    assert accuracy(y, p) == pytest.approx(0.75)
    # (tp*tn - fp*fn) / sqrt(4*4*4*4) = (9 - 1) / 16
    assert matthews_corrcoef(y, p) == pytest.approx(0.5)
    assert matthews_corrcoef(y, y) == pytest.approx(1.0)
    assert matthews_corrcoef(y, 1 - y) == pytest.approx(-1.0)
    assert matthews_corrcoef(y, np.ones_like(y)) == 0.0  # undefined -> 0


def test_evaluate_is_json_ready():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 100), 0, 1)
    metrics, roc = evaluate(y, p)
    assert metrics.n == 100 and metrics.n_events == 50
    assert 0.9 < metrics.auc <= 1.0
    assert 0.01 <= metrics.threshold <= 0.99
    assert sum(map(sum, metrics.confusion)) == 100
    json.dumps({"m": metrics.to_dict(), "roc": roc})  # no inf, no numpy types
    assert roc["thresholds"][0] is None


def test_bad_input():
    with pytest.raises(ParameterError, match="both classes"):
        roc_curve(np.ones(4, int), np.linspace(0, 1, 4))
    with pytest.raises(ParameterError, match="0 \\(no event\\) or 1"):
        roc_curve(np.array([0, 2, 1]), np.zeros(3))
    with pytest.raises(ParameterError, match="NaN"):
        roc_curve(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ParameterError, match="shape"):
        roc_curve(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
