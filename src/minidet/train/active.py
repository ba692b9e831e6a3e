"""Active learning: the order in which a person scores snippets.

A scoring session presents snippets in one of three orders (``minidet score --order``):

* ``extraction``: as stored (by recording, then time) -- the default;
* ``uncertainty``: the snippets a model is least sure of first, by ``|p - 0.5|`` of its event
  probability ``p`` (:func:`minidet.train.extract.prescore`); snippets it could not score
  (NaN) come last;
* ``random``: a permutation drawn with a seed.

In both non-default orders the snippets still unscored when the order is chosen come first,
so a second round (retrain, rescore with the new model, score more) starts with new work.
The order is stored in the dataset's ``review_rank`` array (and the kind, seed and model in
its attributes), so a reopened session keeps it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from .dataset import Dataset

__all__ = ["ORDERS", "presentation_order", "review_ranks", "uncertainty"]

#: Orders a scoring session can present snippets in.
ORDERS = ("extraction", "uncertainty", "random")


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """``|p - 0.5|``: 0 for a model at a loss, 0.5 for one that is sure (NaN stays NaN)."""
    return np.abs(np.asarray(probabilities, dtype=np.float64) - 0.5)


def review_ranks(dataset: Dataset, order: str, seed: int = 0) -> np.ndarray:
    """The position (0 = first) at which each snippet is presented in ``order``.

    ``uncertainty`` sorts by :func:`uncertainty` of ``dataset.prescore`` (ties and NaN in
    extraction order, NaN last), ``random`` draws a permutation with ``seed``; in both the
    unscored snippets come before the scored ones. ``extraction`` gives -1 everywhere (the
    stored order).

    Raises
    ------
    ParameterError
        An unknown order, or ``uncertainty`` on a dataset without any prescore.
    """
    if order not in ORDERS:
        raise ParameterError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    n = dataset.n
    if order == "extraction":
        return np.full(n, -1, dtype=np.int64)
    if order == "uncertainty":
        u = uncertainty(dataset.prescore)
        if n and not np.isfinite(u).any():
            raise ParameterError("order 'uncertainty' needs a model's score of the snippets: pass --model "
                                 "(e.g. --model gc-robust) or extract with --prescore MODEL")
        key = np.where(np.isfinite(u), u, np.inf)
    else:
        key = np.random.default_rng(seed).permutation(n).astype(np.float64)
    # lexsort: last key first -> scored after unscored, then the key, then extraction order
    sequence = np.lexsort((np.arange(n), key, dataset.scored.astype(np.int8)))
    ranks = np.empty(n, dtype=np.int64)
    ranks[sequence] = np.arange(n)
    return ranks


def presentation_order(dataset: Dataset) -> np.ndarray:
    """Snippet indices in the order a scoring session presents them (from ``review_rank``)."""
    ranks = dataset.review_rank
    if dataset.n == 0 or np.all(ranks < 0):
        return np.arange(dataset.n)
    # a rank of -1 (e.g. after editing the file elsewhere) goes last, in extraction order
    key = np.where(ranks >= 0, ranks, np.iinfo(np.int64).max)
    return np.lexsort((np.arange(dataset.n), key))
