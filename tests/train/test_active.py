"""Scoring orders for active learning (minidet.train.active)."""

from __future__ import annotations

import numpy as np
import pytest

from minidet.errors import ParameterError
from minidet.train.active import presentation_order, review_ranks, uncertainty
from minidet.train.dataset import Dataset, merge


def _dataset(prescore, scored=None) -> Dataset:
    n = len(prescore)
    return Dataset(events=np.random.default_rng(0).normal(size=(n, 32)), scores=np.zeros(n, int),
                   raw_indices=np.arange(n) * 32, cell_label=np.full(n, "a.h5"), prescore=np.asarray(prescore, float),
                   scored=np.zeros(n, bool) if scored is None else np.asarray(scored, bool))


def test_uncertainty_order_least_sure_first_nan_last_unscored_first() -> None:
    p = [0.99, 0.5, np.nan, 0.3, 0.05, 0.62, 0.45]
    ds = _dataset(p)
    ds.review_rank = review_ranks(ds, "uncertainty")
    # |p - 0.5|: 0.49, 0, nan, 0.2, 0.45, 0.12, 0.05
    assert presentation_order(ds).tolist() == [1, 6, 5, 3, 4, 0, 2]
    assert uncertainty(np.array([0.5, 0.9, 0.1])).tolist() == pytest.approx([0.0, 0.4, 0.4])
    scored = _dataset(p, scored=[0, 1, 0, 0, 0, 0, 1])
    scored.review_rank = review_ranks(scored, "uncertainty")
    assert presentation_order(scored).tolist() == [5, 3, 4, 0, 2, 1, 6]  # scored ones last


def test_random_and_extraction_ranks() -> None:
    ds = _dataset(np.full(50, np.nan))
    a, b = review_ranks(ds, "random", seed=1), review_ranks(ds, "random", seed=2)
    assert sorted(a.tolist()) == list(range(50)) and not np.array_equal(a, b)
    assert np.array_equal(a, review_ranks(ds, "random", seed=1))
    assert (review_ranks(ds, "extraction") == -1).all()
    ds.review_rank = review_ranks(ds, "extraction")
    assert presentation_order(ds).tolist() == list(range(50))
    with pytest.raises(ParameterError, match="needs a model's score"):
        review_ranks(ds, "uncertainty")
    with pytest.raises(ParameterError, match="order must be one of"):
        review_ranks(ds, "best")


def test_merge_starts_the_order_afresh() -> None:
    a, b = _dataset([0.1, 0.5, 0.9]), _dataset([0.4, 0.6])
    for d in (a, b):
        d.review_rank = review_ranks(d, "uncertainty")
        d.attrs["score_order"] = "uncertainty"
    merged = merge([a, b])
    assert (merged.review_rank == -1).all() and "score_order" not in merged.attrs
