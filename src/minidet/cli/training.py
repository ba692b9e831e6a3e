"""minidet window, extract, dataset and score: the seed workflow's training data, from the window size to scored snippets."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


from .common import handle_errors, main, reader_kwargs, reader_options


# ----------------------------------------------------------------------------- training sets
@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@reader_options
@click.option("--direction", type=click.Choice(["negative", "positive"]), default="negative", show_default=True,
              help="Polarity of the events.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="PNG of example events with the window drawn. [default: PATH's name + .window.png, here]")
@click.option("--no-plot", is_flag=True, help="Do not write the PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def window(path: str, direction: str, plot_path: str | None, no_plot: bool, as_json: bool, **kwargs: Any) -> None:
    """Suggest a window size from the kinetics of a recording's clearest events."""
    from pathlib import Path

    from ..io import load
    from ..train.window import plot_window, suggest_window

    recording = load(path, **reader_kwargs(kwargs))
    suggestion = suggest_window(recording, direction=direction)
    result = suggestion.to_dict()
    if not no_plot:
        plot_path = plot_path or f"{Path(path).stem}.window.png"
        result["plot"] = str(plot_window(suggestion, recording, plot_path))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(suggestion.to_text(recording.unit))
        if "plot" in result:
            click.echo(f"plot: {result['plot']}")

@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--window-size", type=int, required=True, help="Samples per snippet (see minidet window).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="Dataset file to write (HDF5).")
@reader_options
@click.option("--rise-ms", type=float, default=None, help="Template rise time constant (ms). [from the window size]")
@click.option("--decay-ms", type=float, default=None, help="Template decay time constant (ms). [from the window size]")
@click.option("--threshold-high", type=float, default=4.5, show_default=True, help="Criterion for clear events (score 1).")
@click.option("--threshold-mid", type=float, default=3.0, show_default=True,
              help="Criterion for 'less nice' events and candidates (score 2).")
@click.option("--threshold-low", type=float, default=1.6, show_default=True,
              help="Stretches no detection at this criterion touches are pure noise (score 0).")
@click.option("--direction", type=click.Choice(["negative", "positive"]), default="negative", show_default=True)
@click.option("--no-filter", is_flag=True, help="Match the template on the unfiltered trace.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for drawing noise stretches.")
@click.option("--prescore", "prescore_model", default=None, help="Model that pre-scores every snippet, e.g. gc.")
@click.option("--disagree-with", "disagree_model", default=None, metavar="NAME|PATH",
              help="Add snippets where this model and template matching disagree (suggested score 2): "
                   "events the model is sure of below --threshold-low, clear template events it doubts. "
                   "Its event probability becomes every snippet's prescore.")
@click.option("--model-sure", type=float, default=0.9, show_default=True,
              help="With --disagree-with: prediction peak at which the model is sure of an event.")
@click.option("--model-doubt", type=float, default=0.1, show_default=True,
              help="With --disagree-with: event probability below which the model doubts a clear event.")
@click.option("--force", is_flag=True, help="Replace an existing dataset file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def extract(paths: tuple[str, ...], window_size: int, out: str, rise_ms: float | None, decay_ms: float | None,
            threshold_high: float, threshold_mid: float, threshold_low: float, direction: str, no_filter: bool,
            seed: int, prescore_model: str | None, disagree_model: str | None, model_sure: float,
            model_doubt: float, force: bool, as_json: bool, **kwargs: Any) -> None:
    """Extract training snippets from recordings by template matching into DATASET.h5."""
    from pathlib import Path

    from ..errors import OutputError, ParameterError
    from ..io import load
    from ..train import extract as ex
    from ..train.dataset import check_unlocked, write_dataset

    settings = ex.ExtractSettings(
        window_size=window_size, rise_s=None if rise_ms is None else rise_ms / 1e3,
        decay_s=None if decay_ms is None else decay_ms / 1e3, threshold_high=threshold_high,
        threshold_mid=threshold_mid, threshold_low=threshold_low, direction=direction,
        filter=not no_filter, seed=seed, model_sure=model_sure, model_doubt=model_doubt)
    if prescore_model and disagree_model:
        raise ParameterError("--prescore and --disagree-with exclude each other (--disagree-with prescores "
                             "every snippet with its model)")
    if Path(out).exists() and not force:
        raise OutputError(f"{out} exists; pass --force to replace it")
    check_unlocked(out)
    options = reader_kwargs(kwargs)
    dataset, reports = ex.extract((load(p, **options) for p in paths), settings, disagree_with=disagree_model)
    dataset.attrs["reader_options"] = json.dumps({k: v for k, v in options.items() if v not in (None, 0.0)})
    if prescore_model:
        dataset.prescore = ex.prescore(dataset, prescore_model)
        dataset.attrs["prescore_model"] = prescore_model
    write_dataset(out, dataset, force=force)
    if as_json:
        click.echo(json.dumps({"out": out, "counts": dataset.counts(),
                               "recordings": [r.to_dict() for r in reports]}, indent=2))
        return
    for r in reports:
        click.echo(f"{r.source}: {r.n_clear} clear events, {r.n_intermediate} intermediate, {r.n_noise} noise "
                   f"stretches (largest criterion {r.max_criterion:.3g})"
                   + (f"; {r.n_disagree} where {disagree_model} disagrees ({r.n_doubted} of the clear ones)"
                      if disagree_model else ""))
        for note in r.notes:
            click.echo(f"  note: {note}")
    c = dataset.counts()
    click.echo(f"wrote {out}: {dataset.n} snippets of {dataset.window_size} samples, suggested scores "
               f"1: {c['event']}, 2: {c['exclude']}, 0: {c['no event']}; score them with: minidet score {out}")

@main.group()
def dataset() -> None:
    """Training dataset files: info, merge, rebalance."""

@dataset.command("info")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def dataset_info(path: str, as_json: bool) -> None:
    """Counts per score and per source of a dataset file."""
    from ..train.curate import split_groups
    from ..train.dataset import CATEGORY_NAMES, read_dataset

    ds = read_dataset(path)
    counts = ds.counts()
    categories = {CATEGORY_NAMES[int(c)]: int((ds.category == c).sum()) for c in sorted(set(ds.category.tolist()))}
    groups, how = split_groups(ds) if ds.scored.any() else ({}, "")
    info_ = {"file": path, "window_size": ds.window_size, "counts": counts, "categories": categories,
             "sources": ds.per_source(), "groups": {k: int(v.size) for k, v in groups.items()}, "split": how,
             "attrs": {k: v for k, v in ds.attrs.items() if not k.startswith("_")}}
    if as_json:
        click.echo(json.dumps(info_, indent=2, default=str))
        return
    click.echo(f"file:         {path}")
    click.echo(f"snippets:     {ds.n} x {ds.window_size} samples")
    click.echo(f"scores:       1 event {counts['event']}, 0 no event {counts['no event']}, 2 exclude {counts['exclude']}"
               + (f"  ({counts['unscored']} not scored yet: their scores are the extractor's suggestion)"
                  if counts["unscored"] else ""))
    click.echo("found by:     " + ", ".join(f"{k} {v}" for k, v in categories.items()))
    if groups:
        click.echo("groups:       " + ", ".join(f"{k.replace('_', ' ')} {v.size}" for k, v in groups.items())
                   + " (scored snippets)")
        click.echo(f"              split {how}")
    click.echo("sources:")
    for row in ds.per_source():
        where = row["source"] + (f" [{row['channel']}]" if row["channel"] else "")
        click.echo(f"  {where}: {row['n']} (1: {row['event']}, 0: {row['no event']}, 2: {row['exclude']}, "
                   f"unscored {row['unscored']})")

@dataset.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@handle_errors
def dataset_merge(paths: tuple[str, ...], out: str, force: bool) -> None:
    """Merge several dataset files (one window size) into one."""
    from ..train.dataset import merge, read_dataset, write_dataset

    merged = merge([read_dataset(p) for p in paths])
    write_dataset(out, merged, force=force)
    c = merged.counts()
    click.echo(f"wrote {out}: {merged.n} snippets from {len(paths)} files "
               f"(1: {c['event']}, 0: {c['no event']}, 2: {c['exclude']}, unscored {c['unscored']})")

@dataset.command("rebalance")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--ratio", default="intermediate", show_default=True,
              help="nice:less-nice:false-positives:noise, e.g. 300:300:50:550, or liberal, more-restrictive, "
                   "intermediate, restrictive. Proportions: as many snippets are kept as the scarcest "
                   "group allows at them (--counts: numbers of snippets). A missing group's share goes "
                   "to its partner (nice/less nice, false positives/noise).")
@click.option("--counts", "as_counts", is_flag=True,
              help="Read --ratio as numbers of snippets per group (at most what each group has).")
@click.option("--proportions", "as_proportions", is_flag=True, help="Read --ratio as proportions (the default).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--split-by", type=click.Choice(["auto", "category", "criterion", "prescore"]), default="auto",
              show_default=True, help="How nice events are told from less nice ones and false positives from noise.")
@click.option("--event-split", type=float, default=None, help="Criterion/prescore at which an event counts as nice.")
@click.option("--noise-split", type=float, default=None,
              help="Criterion/prescore at which a non-event counts as a false positive.")
@click.option("--include-unscored", is_flag=True, help="Treat unscored snippets' suggested scores as scores.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def dataset_rebalance(path: str, ratio: str, as_counts: bool, as_proportions: bool, out: str, split_by: str,
                      event_split: float | None, noise_split: float | None, include_unscored: bool, seed: int,
                      force: bool, as_json: bool) -> None:
    """Subsample a scored dataset to a ratio of nice : less nice events : false positives : noise.

    Says what it kept of each group and why, and the kept events : non-events balance.
    """
    from ..errors import OutputError, ParameterError
    from ..train.curate import GROUPS, parse_ratio, rebalance
    from ..train.dataset import read_dataset, write_dataset
    from pathlib import Path

    if as_counts and as_proportions:
        raise ParameterError("--counts and --proportions exclude each other")
    values = parse_ratio(ratio)
    if Path(out).exists() and not force:
        raise OutputError(f"{out} exists; pass --force to replace it")
    balanced, report = rebalance(read_dataset(path), values, seed=seed, split_by=split_by, event_split=event_split,
                                 noise_split=noise_split, include_unscored=include_unscored, counts=as_counts)
    write_dataset(out, balanced, force=force)
    if as_json:
        click.echo(json.dumps({"out": out, **report}, indent=2))
        return
    click.echo(f"ratio {report['ratio']} as {report['mode']}; split {report['split']}")
    for g in GROUPS:
        click.echo(f"  {g.replace('_', ' '):15s} available {report['available'][g]:5d}   kept {report['kept'][g]:5d}")
    for note in report["notes"]:
        click.echo(f"  note: {note}")
    balance = "-" if report["balance"] is None else f"{report['balance']:.2f}"
    click.echo(f"  events {report['events']} : non-events {report['non_events']} (balance {balance}); "
               f"dropped {report['dropped_excluded']} snippets scored 2")
    click.echo(f"wrote {out}: {balanced.n} snippets")

@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--recordings", "recordings", multiple=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder holding the source recordings (for the context view); repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any other than localhost requires the printed token.")
@click.option("--port", type=int, default=0, help="Port (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--order", type=click.Choice(["extraction", "uncertainty", "random"]), default=None,
              help="Order to present the snippets in: as extracted, the ones --model is least sure of "
                   "first (|p - 0.5|), or random (--seed); unscored ones first. Stored in the file. "
                   "[the stored order; extraction for a new dataset]")
@click.option("--model", "order_model", default=None, metavar="NAME|PATH",
              help="With --order uncertainty: the model that scores the snippets (e.g. your last "
                   "trained model, or gc-robust). [the dataset's prescore]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --order random: the permutation's seed.")
@handle_errors
def score(path: str, recordings: tuple[str, ...], host: str, port: int, no_browser: bool,
          order: str | None, order_model: str | None, seed: int) -> None:
    """Score a dataset's snippets in the browser (0 no event, 1 event, 2 exclude).

    With --order uncertainty --model M, the snippets M is least sure of come first: train,
    score more in this order with the new model, train again (active learning).
    """
    from ..web.scoring import ScoringSession, build_app

    session = ScoringSession(path, recordings=recordings, order=order, model=order_model, seed=seed)
    c = session.counts()
    kind = session.state()["order_kind"]
    _serve(build_app(session), session, host, port, no_browser,
           opened=f"scoring {path}: {c['total']} snippets, {c['unscored']} unscored, {kind} order",
           how_to_end="Ctrl-C or 'save & quit' ends the session; every change is saved at once")
    click.echo(f"saved {path}")

def _serve(web: Any, session: Any, host: str, port: int, no_browser: bool, opened: str | None,
           how_to_end: str) -> None:
    """Serve a web app until Ctrl-C, SIGTERM or its own quit; close ``session`` in every case.

    Prints the URL (tests and users read it from the line starting with ``open``) and opens
    the browser unless told not to.
    """
    import signal
    import webbrowser

    from ..errors import ParameterError
    from ..web.server import Server

    try:
        try:
            server = Server(web, host=host, port=port).start()
        except OSError as exc:
            raise ParameterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        signal.signal(signal.SIGTERM, lambda *_: web.shutdown_requested.set())  # `kill` saves and ends cleanly
        if opened:
            click.echo(opened)
        click.echo(f"open {server.url}  ({how_to_end})")
        sys.stdout.flush()
        if not no_browser:
            webbrowser.open(server.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    finally:
        session.close()
