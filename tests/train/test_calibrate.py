"""The threshold a trained model stores is chosen for continuous recordings, not for
balanced snippets (minidet.train.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import minidet
from minidet.cli import main
from minidet.detection.autothreshold import AUTO_GRID, estimated_precision_recall, select_threshold
from minidet.errors import ParameterError
from minidet.train.calibrate import CONTINUOUS_PRIOR, dataset_recordings, snippet_threshold
from minidet.train.dataset import write_dataset
from minidet.train.extract import ExtractSettings, extract_recording
from minidet.train.fit import TrainSettings, train_model
from train_synthetic import noise_scaled_windows as noise_windows

FAST = dict(max_epochs=1, device="cpu", num_threads=1)


def test_snippet_rule_weights_non_events_as_a_recording_would():
    # 100 events, 100 non-events; at 0.5 the ROC optimum (tpr 0.95, fpr 0.05), at 0.9 none of
    # the non-events passes and 0.8 of the events do
    roc = {"fpr": [0.0, 0.0, 0.05, 0.5, 1.0], "tpr": [0.0, 0.8, 0.95, 1.0, 1.0],
           "thresholds": [np.inf, 0.9, 0.5, 0.2, 0.01]}
    value, table = snippet_threshold(roc)
    # weighted, 5 false positives stand for 5 * 200 windows: precision 0.95 / (0.95 + 200 * 0.05)
    assert value == 0.9 and table["precision_weighted"] == 1.0 and table["recall"] == 0.8
    value, _ = snippet_threshold(roc, prior=1.0)  # balanced snippets: the ROC optimum
    assert value == 0.5
    assert CONTINUOUS_PRIOR > 10


def test_pooled_counts_choose_like_one_recording():
    grid = AUTO_GRID
    peaks = np.linspace(300, 100, len(grid)).round()
    noise = np.where(np.asarray(grid) < 0.9, 150.0, 0.0)
    k, f1 = select_threshold(peaks, noise)
    assert grid[k] >= 0.9 and f1[k] == pytest.approx(f1.max(), abs=1 / 100)
    k2, _ = select_threshold(2 * peaks, 2 * noise)  # two identical recordings pooled
    assert k2 == k
    precision, recall = estimated_precision_recall(peaks, noise)
    assert precision[k] == 1.0 and 0 < recall[k] <= 1.0


def test_transfer_from_the_default_keeps_its_per_recording_threshold(gc_recording):
    x, y, sd = noise_windows()
    base = minidet.load_model("gc-robust").metadata
    result = train_model((x, y, sd), base="gc-robust", settings=TrainSettings(**FAST), progress=False,
                         calibrate_on=None)
    m = result.metadata
    assert m.auto_threshold and m.threshold == base.threshold
    assert (m.smoothing_steps, m.peak_prominence) == (base.smoothing_steps, base.peak_prominence)
    choice = result.provenance["threshold"]
    assert choice["rule"] == "inherited" and choice["roc_optimal"] == pytest.approx(result.metrics.threshold)
    assert "chosen per recording" in result.summary()
    from minidet.report.notes import training_rows

    rows = dict(training_rows(m.provenance))  # the report's model card says it too
    assert "chosen per recording" in rows["detection threshold"] and "as the base model" in rows["detection threshold"]
    # the stored model detects with threshold=auto by default
    rec, _ = gc_recording
    model = minidet.model.core.MinidetModel(result.network, m)
    res = minidet.detect(rec, model, progress=False)
    assert "auto_threshold" in res.info


def test_threshold_chosen_on_the_training_recording(gc_recording, tmp_path):
    rec, _ = gc_recording
    ds, _ = extract_recording(rec, ExtractSettings())
    ds.scored[:] = True
    result = train_model(ds, base="gc", settings=TrainSettings(**FAST), progress=False, calibrate_on=[rec])
    choice = result.provenance["threshold"]
    assert choice["rule"] == "recordings" and not result.metadata.auto_threshold
    assert result.metadata.threshold in AUTO_GRID and result.metadata.threshold == choice["threshold"]
    assert len(choice["recordings"]) == 1
    per = choice["recordings"][0]
    assert 0 <= per["precision_estimate"] <= 1 and 0 <= per["recall_estimate"] <= 1
    assert per["threshold"] == result.metadata.threshold
    assert len(choice["table"]["peaks"]) == len(AUTO_GRID)
    # a user's threshold wins, and a bad one is refused
    fixed = train_model(ds, base="gc", settings=TrainSettings(**FAST), progress=False, calibrate_on=None,
                        threshold=0.77)
    assert fixed.metadata.threshold == 0.77 and fixed.provenance["threshold"]["rule"] == "user"
    with pytest.raises(ParameterError, match="threshold"):
        train_model(ds, base="gc", settings=TrainSettings(**FAST), progress=False, calibrate_on=None,
                    threshold=1.5)


def test_dataset_recordings_finds_the_files_beside_the_dataset(gc_recording, tmp_path):
    from minidet.simulation import SimulationSettings, simulate_to_file

    path = tmp_path / "cell.h5"
    simulate_to_file(str(path), SimulationSettings(duration_s=2.0), seed=3)
    rec = minidet.load(str(path))
    ds, _ = extract_recording(rec, ExtractSettings())
    write_dataset(tmp_path / "ds.h5", ds)
    found = dataset_recordings(tmp_path / "ds.h5")
    assert [p for p, _ in found] and all(p.endswith("cell.h5") for p, _ in found)
    (tmp_path / "cell.h5").unlink()
    assert dataset_recordings(tmp_path / "ds.h5") == []


def test_cli_train_threshold_option_errors(tmp_path):
    runner = CliRunner()
    x, y = noise_windows()[:2]
    from minidet.train.dataset import Dataset

    n = len(y)
    ds = Dataset(events=x, scores=y, raw_indices=np.arange(n), cell_label=np.full(n, "none.abf"))
    write_dataset(tmp_path / "ds.h5", ds)
    for bad, message in (("2", "--threshold must be in (0, 1)"), ("x", "--threshold must be a number")):
        out = runner.invoke(main, ["train", str(tmp_path / "ds.h5"), "--out", str(tmp_path / "m.minidet.safetensors"),
                                   "--threshold", bad, "--no-progress"])
        assert out.exit_code == 2 and message in out.output, out.output
