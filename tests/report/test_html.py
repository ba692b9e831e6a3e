"""report.html: a short model card with the metadata folded, how the threshold was chosen,
and which events the average event leaves out (on real results of a bundled model)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from minidet.detection.pipeline import detect
from minidet.report.html import write_html_report
from minidet.report.notes import average_breakdown, average_label, capped, threshold_phrase, threshold_sentence
from report_fakes import make_result

#: events at 10 kHz; the window is 600 samples (60 ms): 5000 has its neighbour 500 samples later
EVENTS = [2000, 5000, 5500, 8000, 12000, 16000]


@pytest.fixture(scope="module")
def robust_result():
    """A real DetectionResult of the bundled gc-robust (its metadata holds ~57 kB of provenance);
    the prediction is given, so the network does not run."""
    fake = make_result(events=EVENTS)
    return detect(fake.recording, "gc-robust", prediction=fake.prediction, threshold=0.5)


def _html_without_images(text: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)


def test_model_card_is_short_and_metadata_folded(robust_result, tmp_path: Path) -> None:
    assert len(json.dumps(robust_result.model_metadata)) > 50_000  # what the page used to print whole
    text = write_html_report(robust_result, tmp_path / "report.html").read_text()
    assert len(_html_without_images(text)) < 40_000
    card = text[text.index("<h2>Model</h2>"):text.index("<h2>Recording</h2>")]
    for expected in ("gc-robust", "network input", "600 samples", "<h3>Training</h3>", "base model",
                     "14724 events", "epochs", "validation on 5890 windows", "accuracy 0.927"):
        assert expected in card, expected
    details = re.search(r"<details>(.*?)</details>", card, re.S)
    assert details is not None and "<details open" not in card
    assert "&quot;provenance&quot;" in details.group(1) and "more of" in details.group(1)


def test_converted_model_says_it_has_no_training_record(tmp_path: Path) -> None:
    fake = make_result(events=EVENTS)
    result = detect(fake.recording, "gc", prediction=fake.prediction)
    text = write_html_report(result, tmp_path / "report.html").read_text()
    assert "holds no training record" in text and "GC_lstm_model.h5" in text


def test_capped_shortens_long_lists_and_keeps_short_ones() -> None:
    data = {"a": list(range(100)), "b": [1, 2, 3], "c": [{"x": i, "y": "z" * 50} for i in range(10)]}
    out = capped(data)
    assert out["b"] == [1, 2, 3]
    assert out["a"][:3] == [0, 1, 2] and len(out["a"]) == 4 and "97 more of 100" in out["a"][-1]
    assert len(out["c"]) == 4 and "7 more of 10" in out["c"][-1]


def test_threshold_source_given_model_and_auto(robust_result, tmp_path: Path) -> None:
    assert robust_result.info["threshold_source"] == "given"
    assert "given for this run" in threshold_sentence(robust_result)
    fake = make_result(events=EVENTS)
    from_model = detect(fake.recording, "gc", prediction=fake.prediction)
    assert from_model.info["threshold_source"] == "model"
    assert "the model's default" in threshold_sentence(from_model) and "0.5" in threshold_sentence(from_model)
    auto = {"threshold": 0.93, "grid": [0.5, 0.9, 0.93, 0.95], "peaks": [40, 30, 28, 20],
            "noise_peaks": [9.0, 2.0, 0.0, 0.0], "f1_estimate": [0.8, 0.9, 0.97, 0.8],
            "excluded_fraction": 0.1, "reference": 0.98}
    chosen = dataclasses.replace(robust_result, settings=dataclasses.replace(robust_result.settings, threshold=0.93),
                                 info={**robust_result.info, "threshold_source": "model", "auto_threshold": auto})
    sentence = threshold_sentence(chosen)
    assert sentence.startswith("Threshold 0.93, chosen for this recording (threshold 'auto'")
    assert "gc-robust" in sentence and "0.97" in sentence
    text = write_html_report(chosen, tmp_path / "report.html").read_text()
    assert "chosen for this recording" in text and "(chosen)</strong>" in text
    # the CLI's summary line says the same in a few words
    assert threshold_phrase(chosen) == "threshold 0.93 (auto: chosen for this recording, estimated F1 0.97)"
    assert threshold_phrase(from_model) == "threshold 0.5 (model gc's default)"
    assert threshold_phrase(robust_result).endswith("(given)")


def test_average_left_out_counts_follow_the_rule(robust_result, tmp_path: Path) -> None:
    b = average_breakdown(robust_result)
    assert (b.n_kept, b.n_average) == (robust_result.count, robust_result.summary["n_average"]) == (6, 5)
    assert (b.n_left_out, b.n_next, b.n_previous) == (1, 1, 0)
    assert b.next_ms == pytest.approx(90.0) and b.previous_ms == pytest.approx(30.0)  # 1.5 / 0.5 windows
    assert average_label(b).startswith("average of 5 of 6 (1 left out")
    text = write_html_report(robust_result, tmp_path / "report.html").read_text()
    assert "average of 5 of the 6 kept events, 1 left out: 1 because the next event follows within 90 ms" in text


def test_average_when_every_event_overlaps() -> None:
    b = average_breakdown(make_result(events=[3000, 3200, 3400]))
    assert b.fallback and b.n_average == b.n_kept == 3 and "average of all 3" in average_label(b)
