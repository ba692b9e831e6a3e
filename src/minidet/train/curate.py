"""Curating training datasets: sort scored snippets into the seed workflow's four groups
(nice, less nice, false positives, pure noise) and subsample them to a ratio.

The file format (:class:`~minidet.train.dataset.Dataset`, reading, writing, merging) lives in
:mod:`.dataset`; the Clements-Bekkers criterion of a snippet comes from :mod:`.extract`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DatasetError, ParameterError
from .dataset import CATEGORY_CLEAR, Dataset

__all__ = [
    "GROUPS",
    "PARTNER",
    "RATIO_PRESETS",
    "parse_ratio",
    "rebalance",
    "snippet_criterion",
    "split_groups",
]

#: The four groups of the seed workflow, in the order of a ratio "a:b:c:d".
GROUPS = ("nice", "less_nice", "false_positive", "noise")

#: Ratios nice : less nice : false positives : pure noise from miniML's training notes.
RATIO_PRESETS = {
    "liberal": (100, 500, 50, 550),
    "more-restrictive": (300, 300, 50, 550),
    "intermediate": (300, 300, 300, 300),
    "restrictive": (300, 300, 500, 100),
}


def parse_ratio(text: str) -> tuple[float, float, float, float]:
    """``"300:300:50:550"`` or a preset name (:data:`RATIO_PRESETS`) -> four non-negative numbers."""
    key = text.strip().lower()
    if key in RATIO_PRESETS:
        return tuple(float(v) for v in RATIO_PRESETS[key])  # type: ignore[return-value]
    parts = key.replace(",", ":").split(":")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ParameterError(
            f"ratio must be nice:less-nice:false-positives:noise, four numbers >= 0 (e.g. 300:300:50:550), "
            f"or one of {', '.join(RATIO_PRESETS)}; got {text!r}"
        )
    return values  # type: ignore[return-value]


def split_groups(
    dataset: Dataset,
    split_by: str = "auto",
    event_split: float | None = None,
    noise_split: float | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Sort scored snippets into the four groups of the seed workflow.

    Events (score 1) are "nice" or "less nice"; non-events (score 0) are "false positives"
    (something an event detector picks up) or "pure noise". Score 2 and unscored snippets
    belong to no group.

    split_by
        ``category``: by how the extractor found them (high threshold = nice; found by a
        threshold at all = false positive). ``criterion``: by the Clements-Bekkers
        criterion (stored, or computed on the snippet with the window's template), nice at or
        above ``event_split`` (default: the file's high threshold, else the median of the
        events), false positive at or above ``noise_split`` (default: the low threshold,
        else the median of the non-events). ``prescore``: by a model's probability, nice /
        false positive at or above 0.5 (the model would call it an event). ``auto``: category
        where every snippet has one, else prescore where every snippet has one, else criterion.

    Returns the groups (index arrays) and a sentence saying how they were split.
    """
    usable = dataset.scored & (dataset.scores != 2)
    events = usable & (dataset.scores == 1)
    nonevents = usable & (dataset.scores == 0)
    method = split_by
    if method == "auto":
        if np.all(dataset.category[usable] >= 0):
            method = "category"
        elif np.all(np.isfinite(dataset.prescore[usable])):
            method = "prescore"
        else:
            method = "criterion"
    if method == "category":
        if np.any(dataset.category[usable] < 0):
            raise DatasetError("some snippets have no extraction category (a miniML file?); split by criterion or prescore")
        clear = dataset.category == CATEGORY_CLEAR
        eventlike = dataset.category > 0
        how = "by extraction category: nice = found by the high threshold, false positive = found by a threshold"
    elif method == "prescore":
        if not np.all(np.isfinite(dataset.prescore[usable])):
            raise DatasetError("some snippets have no prescore; extract with --prescore MODEL or split by criterion")
        e_at = 0.5 if event_split is None else float(event_split)
        n_at = 0.5 if noise_split is None else float(noise_split)
        clear = dataset.prescore >= e_at
        eventlike = dataset.prescore >= n_at
        how = f"by prescore: nice = events with prescore >= {e_at:g}, false positive = non-events with prescore >= {n_at:g}"
    elif method == "criterion":
        crit = dataset.criterion.copy()
        computed = ~np.isfinite(crit)
        if computed.any():
            crit[computed] = snippet_criterion(dataset.events[computed], dataset.attrs)
        e_at = event_split if event_split is not None else dataset.attrs.get("threshold_high")
        n_at = noise_split if noise_split is not None else dataset.attrs.get("threshold_low")
        e_note = n_note = ""
        if e_at is None:
            e_at = float(np.median(crit[events])) if events.any() else np.inf
            e_note = " (the events' median)"
        if n_at is None:
            n_at = float(np.median(crit[nonevents])) if nonevents.any() else np.inf
            n_note = " (the non-events' median)"
        clear = crit >= e_at
        eventlike = crit >= n_at
        source = "computed on the snippets" if computed.all() else "stored" if not computed.any() else "stored or computed"
        how = (
            f"by template-matching criterion ({source}): nice = events with criterion >= {e_at:.3g}{e_note}, "
            f"false positive = non-events with criterion >= {n_at:.3g}{n_note}"
        )
    else:
        raise ParameterError(f"split_by must be auto, category, criterion or prescore, got {split_by!r}")
    groups = {
        "nice": np.flatnonzero(events & clear),
        "less_nice": np.flatnonzero(events & ~clear),
        "false_positive": np.flatnonzero(nonevents & eventlike),
        "noise": np.flatnonzero(nonevents & ~eventlike),
    }
    return groups, how


def snippet_criterion(events: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """Largest Clements-Bekkers criterion of each snippet, in the event direction.

    The template comes from the file's template settings or, failing those, from the
    window size (:func:`minidet.train.extract.template_for_window`).
    """
    # lazily: extract brings scipy.signal and the template matcher, which only this split needs
    from .extract import _hann_smooth, criterion_trace, template_for_window

    window = events.shape[1]
    direction = str(attrs.get("direction", "negative"))
    rise = attrs.get("template_rise_samples")
    decay = attrs.get("template_decay_samples")
    template = template_for_window(window, rise_samples=rise, decay_samples=decay)
    sign = -1.0 if direction == "negative" else 1.0
    smooth = window // 30 if bool(attrs.get("matching_filter", True)) else 0  # as extraction matches
    out = np.empty(events.shape[0])
    for i, snippet in enumerate(events):
        crit = criterion_trace(_hann_smooth(snippet, smooth), template) * sign
        finite = crit[np.isfinite(crit)]
        out[i] = float(finite.max()) if finite.size else np.nan
    return out


#: the group that takes over a missing group's share: events stay events, non-events non-events
PARTNER = {"nice": "less_nice", "less_nice": "nice", "false_positive": "noise", "noise": "false_positive"}


def rebalance(
    dataset: Dataset,
    ratio: tuple[float, float, float, float],
    seed: int = 0,
    split_by: str = "auto",
    event_split: float | None = None,
    noise_split: float | None = None,
    include_unscored: bool = False,
    counts: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    """Subsample scored snippets to ``ratio`` = nice : less nice : false positives : noise.

    ``ratio`` is read as proportions (``counts=False``): as many snippets are kept as the
    scarcest group allows at those proportions, e.g. ``300:300:300:300`` keeps equal numbers of
    each, however many that is. With ``counts=True`` the numbers are how many snippets of each
    group to keep (fewer where a group has fewer, said in the report's notes). A group the ratio
    asks for that the dataset lacks gives its share to its partner (nice <-> less nice, false
    positives <-> noise), so events and non-events keep the ratio's balance, as the seed
    workflow asks. Each group is drawn at random with ``seed``; score-2 snippets are dropped,
    since training excludes them.

    Returns the new dataset and a report: available and kept per group, the ratio used, the
    kept events : non-events balance, how the groups were split and notes on what was changed.

    Raises
    ------
    DatasetError
        Snippets are unscored (unless ``include_unscored``), or the dataset lacks both events
        or both kinds of non-events that the ratio asks for.
    """
    unscored = int(np.sum(~dataset.scored))
    if unscored and not include_unscored:
        raise DatasetError(
            f"{unscored} of {dataset.n} snippets are not scored yet; score them (minidet score) "
            "or pass --include-unscored to treat the extractor's suggestions as scores"
        )
    if len(ratio) != 4 or any(not np.isfinite(v) or v < 0 for v in ratio) or sum(ratio) <= 0:
        raise DatasetError(f"ratio must be four non-negative numbers, not all 0, got {ratio!r}")
    work = dataset
    if include_unscored and unscored:
        work = dataset.subset(np.arange(dataset.n))
        work.scored[:] = True
    groups, how = split_groups(work, split_by, event_split, noise_split)
    available = {g: int(groups[g].size) for g in GROUPS}
    wanted = dict(zip(GROUPS, (float(v) for v in ratio)))
    notes: list[str] = []
    for g in GROUPS:
        partner = PARTNER[g]
        if wanted[g] > 0 and available[g] == 0:
            if available[partner] == 0:
                kind = "events" if g in ("nice", "less_nice") else "non-events"
                raise DatasetError(
                    f"the ratio asks for {kind} but the dataset has none (available: {_fmt_counts(available)}; "
                    f"split {how})"
                )
            notes.append(f"no {g.replace('_', ' ')} snippets: their share ({wanted[g]:g}) goes to "
                         f"{partner.replace('_', ' ')}")
            wanted[partner] += wanted[g]
            wanted[g] = 0.0
    rng = np.random.default_rng(seed)
    keep: dict[str, int] = {}
    if counts:
        for g in GROUPS:
            keep[g] = min(int(round(wanted[g])), available[g])
            if keep[g] < int(round(wanted[g])):
                notes.append(f"{g.replace('_', ' ')}: {int(round(wanted[g]))} asked, {available[g]} available")
    else:
        scale = min(available[g] / wanted[g] for g in GROUPS if wanted[g] > 0)
        for g in GROUPS:
            keep[g] = int(np.floor(scale * wanted[g] + 1e-9))
    chosen = [np.sort(rng.choice(groups[g], size=keep[g], replace=False)) for g in GROUPS if keep[g]]
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    out = work.subset(index)
    used = ":".join(f"{wanted[g]:g}" for g in GROUPS)
    out.attrs["rebalanced_ratio"] = used
    out.attrs["rebalanced_split"] = how
    events = keep["nice"] + keep["less_nice"]
    non_events = keep["false_positive"] + keep["noise"]
    report = {
        "available": available,
        "kept": keep,
        "ratio": used,
        "mode": "counts" if counts else "proportions",
        "events": events,
        "non_events": non_events,
        "balance": round(events / non_events, 4) if non_events else None,
        "dropped_excluded": int(np.sum(work.scores == 2)),
        "split": how,
        "notes": notes,
        "n": out.n,
    }
    return out, report


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
