"""Classification metrics for a trained event classifier: ROC, AUC, confusion matrix, MCC.

Plain numpy, no scikit-learn: the definitions follow scikit-learn's (``roc_curve`` with
``drop_intermediate=False``, ``auc`` by the trapezoid rule, ``matthews_corrcoef``) so that
figures can be compared with miniML's notebooks, which use scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError

__all__ = [
    "ClassificationMetrics", "accuracy", "auc", "confusion_matrix", "evaluate",
    "matthews_corrcoef", "optimal_threshold", "roc_curve",
]


def _labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise ParameterError(f"labels must be 0 (no event) or 1 (event), got {bad.tolist()}")
    return y.astype(np.int64)


def _scores(scores: np.ndarray, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ParameterError(f"scores must have shape ({n},) like the labels, got {s.shape}")
    if not np.isfinite(s).all():
        raise ParameterError("scores hold NaN or infinite values")
    return s


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic.

    Parameters
    ----------
    y_true : array of 0/1, shape (n,)
    scores : array, shape (n,)
        Event probability (or any score where larger means "more likely an event").

    Returns
    -------
    fpr, tpr, thresholds : arrays, shape (k,)
        False and true positive rates for the decision ``score >= threshold``, thresholds in
        decreasing order; the first threshold is ``inf`` (nothing called an event), so the
        curve starts at (0, 0) and ends at (1, 1).

    Raises
    ------
    ParameterError
        Only one class present (the ROC is undefined), bad shapes or values.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ParameterError("the ROC needs both classes; the labels hold only "
                             f"{'events' if n_neg == 0 else 'non-events'}")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # Last index of each run of equal scores: one ROC point per distinct threshold.
    distinct = np.flatnonzero(np.diff(s_sorted)) if s_sorted.size > 1 else np.array([], int)
    ends = np.r_[distinct, y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[ends]
    fps = (ends + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return fpr, tpr, thresholds


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule (``x`` monotonic, as an ROC's fpr)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ParameterError(f"auc needs two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def optimal_threshold(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray,
                      bounds: tuple[float, float] = (0.01, 0.99), midpoint: bool = False) -> float:
    """The ROC's optimal point: a threshold that maximises ``tpr - fpr`` (Youden's J).

    As miniML: ``thresholds[argmax(tpr - fpr)]``, the lowest score still called an event at
    that point. With ``midpoint`` the value is moved halfway down to the next lower score
    instead (same decisions on these windows, more margin below); on the public30 recording
    that made a transfer-learned GC model more liberal (more false positives), so it is off
    by default. The value is clipped to ``bounds`` so that it is a usable detection threshold.
    """
    j = np.asarray(tpr) - np.asarray(fpr)
    thr = np.asarray(thresholds, dtype=np.float64)
    best = int(np.argmax(j))
    hi = float(thr[best]) if np.isfinite(thr[best]) else 1.0
    value = hi
    if midpoint:
        lo = float(thr[best + 1]) if best + 1 < thr.size else 0.0
        value = (hi + min(lo, hi)) / 2.0
    lo_b, hi_b = bounds
    return float(min(max(value, lo_b), hi_b))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` (rows: truth 0/1, columns: predicted 0/1)."""
    y = _labels(y_true)
    p = _labels(y_pred)
    if p.shape != y.shape:
        raise ParameterError(f"predictions must have shape {y.shape}, got {p.shape}")
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions."""
    cm = confusion_matrix(y_true, y_pred)
    return float(np.trace(cm) / cm.sum())


def matthews_corrcoef(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Matthews correlation coefficient in [-1, 1]; 0 when a row or column of the matrix is empty."""
    (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pred).astype(np.float64)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if denom == 0:
        return 0.0
    return float((tp * tn - fp * fn) / denom)


@dataclass(frozen=True)
class ClassificationMetrics:
    """How well a classifier separates events from non-events on a set of windows.

    Attributes
    ----------
    n, n_events, n_non_events : int
        Windows evaluated and how many of each class.
    auc : float
        Area under the ROC.
    threshold : float
        The ROC's optimal point (Youden's J), suggested as the detection threshold.
    accuracy : float
        Accuracy at probability >= 0.5 (what Keras reports as binary accuracy).
    accuracy_at_threshold : float
        Accuracy at ``probability >= threshold``.
    mcc : float
        Matthews correlation at ``threshold``.
    confusion : list of list of int
        ``[[tn, fp], [fn, tp]]`` at ``threshold``.
    precision, recall : float
        At ``threshold`` (0 when undefined).
    """

    n: int
    n_events: int
    n_non_events: int
    auc: float
    threshold: float
    accuracy: float
    accuracy_at_threshold: float
    mcc: float
    confusion: list
    precision: float
    recall: float

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def evaluate(y_true: np.ndarray, probabilities: np.ndarray,
             threshold: float | None = None) -> tuple[ClassificationMetrics, dict]:
    """All metrics of one evaluation, plus the ROC curve.

    Parameters
    ----------
    y_true : array of 0/1, shape (n,)
    probabilities : array, shape (n,)
        Event probabilities from the classifier.
    threshold : float, optional
        Decision threshold for the confusion matrix and MCC; default: the ROC's optimal point.

    Returns
    -------
    metrics : ClassificationMetrics
    roc : dict
        ``{"fpr": [...], "tpr": [...], "thresholds": [...]}`` (the first threshold, ``inf``,
        is written as None so that the dict is valid JSON).
    """
    y = _labels(y_true)
    p = _scores(probabilities, y.size)
    fpr, tpr, thr = roc_curve(y, p)
    best = optimal_threshold(fpr, tpr, thr)
    use = best if threshold is None else float(threshold)
    pred = (p >= use).astype(np.int64)
    cm = confusion_matrix(y, pred)
    (tn, fp), (fn, tp) = cm
    metrics = ClassificationMetrics(
        n=int(y.size), n_events=int(y.sum()), n_non_events=int(y.size - y.sum()),
        auc=auc(fpr, tpr), threshold=best,
        accuracy=accuracy(y, (p >= 0.5).astype(np.int64)),
        accuracy_at_threshold=float((tn + tp) / y.size),
        mcc=matthews_corrcoef(y, pred),
        confusion=cm.tolist(),
        precision=float(tp / (tp + fp)) if tp + fp else 0.0,
        recall=float(tp / (tp + fn)) if tp + fn else 0.0,
    )
    roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
           "thresholds": [None if not np.isfinite(t) else float(t) for t in thr]}
    return metrics, roc
