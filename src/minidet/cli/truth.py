"""minidet simulate and evaluate: recordings with a known truth, and detections scored against it."""

from __future__ import annotations

import json
from typing import Any, Callable

import click

from .. import DEFAULT_MODEL

from .common import handle_errors, main
from .detect import _MethodChoice


# ----------------------------------------------------------------------------- ground truth
def _float_list(spec: str, option: str) -> list[float]:
    from ..errors import ParameterError

    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{option} {spec!r}: give numbers separated by commas, e.g. 5,7.5,10") from None
    if not values:
        raise ParameterError(f"{option}: give at least one number")
    return values

def _simulation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options of ``simulate`` (also used by ``evaluate --sweep``)."""
    options = [
        click.option("--duration", "duration_s", type=float, default=60.0, show_default=True, help="Seconds."),
        click.option("--sampling-rate", "sampling_rate", type=float, default=50_000.0, show_default=True, help="Hz."),
        click.option("--rate", "event_rate_hz", type=float, default=5.0, show_default=True,
                     help="Mean event frequency, Hz (Poisson: events overlap)."),
        click.option("--direction", "event_direction", type=click.Choice(["negative", "positive"]),
                     default="negative", show_default=True),
        click.option("--amplitude", "amplitude_median", type=float, default=10.0, show_default=True,
                     help="Median event amplitude (unit); --snr overrides it."),
        click.option("--amplitude-log-sd", type=float, default=0.4, show_default=True,
                     help="SD of log amplitude (log-normal amplitudes)."),
        click.option("--rise-tau-ms", type=float, default=0.15, show_default=True, help="Median rise time constant."),
        click.option("--decay-tau-ms", type=float, default=1.2, show_default=True, help="Median decay time constant."),
        click.option("--kinetics-log-sd", type=float, default=0.25, show_default=True,
                     help="SD of log rise and decay time constants."),
        click.option("--noise-sd", type=float, default=1.0, show_default=True, help="SD of the coloured noise (unit)."),
        click.option("--noise", "noise_spectrum", default="gc", show_default=True,
                     help="Noise spectrum: gc, white, pink, a recording (its noise), a training dataset .h5 "
                          "(its score-0 snippets) or a .npz spectrum."),
        click.option("--noise-sampling-rate", type=float, default=None,
                     help="Sampling rate (Hz) of a --noise dataset that stores none (gc_training_example: 50000)."),
        click.option("--hum", "hum_amplitude", type=float, default=0.0, show_default=True,
                     help="Line hum amplitude (unit) at --hum-hz, plus harmonics at 1/k of it."),
        click.option("--hum-hz", "hum_frequency_hz", type=float, default=50.0, show_default=True),
        click.option("--drift-sd", type=float, default=0.0, show_default=True, help="SD of slow (< 0.2 Hz) drift, unit."),
        click.option("--transient-rate", "transient_rate_hz", type=float, default=0.0, show_default=True,
                     help="Non-synaptic transients per second (spikes, biphasic blips, steps, sags)."),
        click.option("--transient-kinds", default="spike,biphasic,step,sag", show_default=True),
        click.option("--unit", default="pA", show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func

def _simulation_settings(kwargs: dict[str, Any], snr_db: float | None):
    from ..noise import resolve_spectrum
    from ..simulation import SimulationSettings

    noise_rate = kwargs.pop("noise_sampling_rate")
    spectrum = resolve_spectrum(kwargs.pop("noise_spectrum"), sampling_rate=noise_rate)
    log_sd = kwargs.pop("kinetics_log_sd")
    return SimulationSettings(
        rise_tau_s=kwargs.pop("rise_tau_ms") / 1e3, decay_tau_s=kwargs.pop("decay_tau_ms") / 1e3,
        rise_tau_log_sd=log_sd, decay_tau_log_sd=log_sd, noise_spectrum=spectrum, snr_db=snr_db,
        transient_kinds=tuple(k.strip() for k in kwargs.pop("transient_kinds").split(",") if k.strip()),
        **kwargs,
    )

@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=str))
@_simulation_options
@click.option("--snr", "snr_db", type=float, default=None,
              help="SNR in dB, 20 log10(median amplitude / noise SD); sets the median amplitude.")
@click.option("--seed", type=int, default=None, help="Random seed (recorded in the truth). [random]")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Truth file (.h5 or .npz). [OUT with .truth.h5]")
@click.option("--float32", is_flag=True, help="Store the trace as float32 (half the size).")
@click.option("--int16", is_flag=True,
              help="Store the trace as int16 with a scale factor, as a digitizer does (a quarter the size). "
                   "OUT ending in .abf always writes an int16 ABF1 file.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def simulate(out: str, snr_db: float | None, seed: int | None, truth_path: str | None, float32: bool, force: bool,
             as_json: bool, int16: bool = False, **kwargs: Any) -> None:
    """Simulate a recording with known events (and transients) for testing detectors.

    Writes OUT (HDF5, dataset 'trace', or a gap-free ABF1 file when OUT ends in .abf; both
    readable by minidet detect) and the ground truth
    (onsets, amplitudes, kinetics of every event; where the transients are) next to it.
    Evaluate detections with: minidet evaluate --truth OUT.truth.h5 RESULTS
    """
    from ..simulation import simulate_to_file, truth_path_for

    settings = _simulation_settings(kwargs, snr_db)
    truth_path = truth_path or truth_path_for(out)
    truth = simulate_to_file(out, settings, seed=seed, truth_path=truth_path,
                             dtype="int16" if int16 else "float32" if float32 else None, overwrite=force)
    if as_json:
        click.echo(json.dumps({"recording": out, "truth": truth_path, "n_events": truth.n_events,
                               "n_transients": int(len(truth.transients)), "snr_db": truth.snr_db,
                               "seed": truth.seed, "settings": truth.settings}, indent=2))
        return
    click.echo(f"{out}: {truth.summary()}")
    click.echo(f"truth: {truth_path} (seed {truth.seed})")

@main.command()
@click.argument("detections", required=False, type=click.Path(path_type=str))
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Truth file written by minidet simulate.")
@click.option("--before-ms", type=float, default=1.0, show_default=True,
              help="A detection may lie this long before the true onset.")
@click.option("--after-ms", type=float, default=3.0, show_default=True,
              help="A detection may lie this long after the true onset.")
@click.option("--detections-rate", type=float, default=None,
              help="Sampling rate (Hz) of detections given as times. [the truth's]")
@click.option("--sweep", "do_sweep", is_flag=True,
              help="Instead: simulate a series of SNRs, detect, and print F1 against SNR.")
@click.option("--snrs", default="5,7.5,10,12.5,15", show_default=True, help="--sweep: SNRs in dB.")
@click.option("--kinetics", default="1", show_default=True,
              help="--sweep: factors on both time constants, e.g. 1,0.5,4.5 (0.5 = 2x faster).")
@click.option("--method", type=_MethodChoice(), default="miniml", show_default=True,
              help="--sweep: the detector (miniml: --model; or a classic one).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="--sweep: model for --method miniml.")
@click.option("--seed", type=int, default=0, show_default=True, help="--sweep: random seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="--sweep: write F1 against SNR to this PNG.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="--sweep: write the table to this CSV.")
@_simulation_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@handle_errors
def evaluate(detections: str | None, truth_path: str | None, before_ms: float, after_ms: float,
             detections_rate: float | None, do_sweep: bool, snrs: str, kinetics: str, method: str, model: str,
             seed: int, plot_path: str | None, csv_path: str | None, as_json: bool, **kwargs: Any) -> None:
    """Score DETECTIONS against a simulation's truth: precision, recall, F1, errors.

    DETECTIONS: a minidet results folder, events.csv or results.h5; a CSV of event times
    (column time_s) or sample indices (column sample); or a .npy of sample indices.
    With --sweep: simulate each SNR (and kinetics), run --method on it, tabulate F1.
    """
    from ..errors import ParameterError
    from ..evaluation import MatchSettings, evaluate as run_evaluate, make_detector, plot_sweep, sweep

    match = MatchSettings(before_ms / 1e3, after_ms / 1e3)
    if do_sweep:
        if detections or truth_path:
            raise ParameterError("--sweep simulates its own recordings: give no DETECTIONS or --truth with it")
        base = _simulation_settings(kwargs, None)
        detector = make_detector(method, model) if method in ("miniml", "model") else make_detector(method)

        def show(row: dict[str, Any]) -> None:
            if not as_json:
                click.echo(f"  SNR {row['snr_db']:5.1f} dB, kinetics x{row['kinetics_scale']:g}: "
                           f"F1 {row['f1']:.3f} (precision {row['precision']:.3f}, recall {row['recall']:.3f})",
                           err=True)

        table = sweep(_float_list(snrs, "--snrs"), detector, base, _float_list(kinetics, "--kinetics"),
                      seed=seed, match=match, progress=show)
        table.insert(0, "method", method if method not in ("miniml", "model") else f"miniml ({model})")
        if csv_path:
            table.to_csv(csv_path, index=False, float_format="%.4g")
        if plot_path:
            plot_sweep(table, plot_path, title=f"{method}, {base.duration_s:g} s per SNR")
        if as_json:
            click.echo(table.to_json(orient="records", indent=2))
        else:
            click.echo(table[["method", "snr_db", "kinetics_scale", "n_true", "n_detected", "precision", "recall",
                              "f1"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            if plot_path:
                click.echo(f"plot: {plot_path}")
        return
    if not detections or not truth_path:
        raise ParameterError("give --truth TRUTH and DETECTIONS (or --sweep)")
    result = run_evaluate(truth_path, detections, match, sampling_rate=detections_rate)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.to_text())
