"""Building training sets: window size, snippet extraction, scored datasets.

:mod:`.window` suggests a window size from a recording's event kinetics, :mod:`.extract`
cuts snippets by template matching, :mod:`.dataset` reads, writes and merges dataset files
in miniML's layout, :mod:`.curate` sorts scored snippets into groups and rebalances them.
The scoring app lives in :mod:`minidet.web.scoring`.
"""

from __future__ import annotations

from .curate import parse_ratio, rebalance
from .dataset import Dataset, DatasetLock, merge, read_dataset, write_dataset

__all__ = ["Dataset", "DatasetLock", "merge", "parse_ratio", "read_dataset", "rebalance", "write_dataset"]
