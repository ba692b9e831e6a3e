"""The analysis app end to end in a real headless Chromium, with the bundled gc model.

Open the bundled example, cut it to its last 3 s (through the pre-processing panel, to keep
the analysis short on a CPU), analyze, review and delete an event with the keyboard, close
the tab, kill the server, get the unsaved work back, save, and check the saved files. The
screenshots of the main view and of the event viewer are kept in ``$MINIDET_TEST_ARTIFACTS``
(default: build/test-artifacts/ in the checkout).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from minidet import examples
from minidet.report import read_results
from web_helpers import CliServer, wait_for

ARTIFACTS = Path(os.environ.get("MINIDET_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "build" / "test-artifacts")


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready") == "1", what="the page")
    settled(driver)


def settled(driver) -> None:
    time.sleep(0.15)
    wait_for(lambda: driver.execute_script("return document.body.dataset.pending") == "0", what="requests")


def screenshot(driver, name: str) -> None:
    driver.execute_script("document.getElementById('status').className = 'status'")  # no toast in the picture
    driver.save_screenshot(str(ARTIFACTS / name))


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def test_open_analyze_delete_recover_save(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = (str(examples.path()), "--out", str(tmp_path / "results"), "--state-dir", str(tmp_path / "state"))
    servers = [CliServer("app", *args, cwd=tmp_path, timeout=90)]
    try:
        open_page(browser, servers[0].url)
        assert "public10.h5" in text(browser, "file") and text(browser, "recinfo").startswith("10 s")

        # pre-processing: cut the first 7 s out
        Select(browser.find_element("id", "step-kind")).select_by_value("cut")
        for field, value in (("p-start_s", "0"), ("p-stop_s", "7")):
            browser.find_element("id", field).clear()
            browser.find_element("id", field).send_keys(value)
        browser.find_element("id", "step-add").click()
        wait_for(lambda: text(browser, "recinfo").startswith("3 s of 10 s"), what="the cut")
        assert "cut 0–7 s" in text(browser, "steps")

        # analyze with the panel's defaults: the default model, gc-robust
        assert Select(browser.find_element("id", "model")).first_selected_option.text == "gc-robust"
        browser.find_element("id", "analyze").click()
        wait_for(lambda: browser.execute_script("return document.body.dataset.job") != "idle", what="the start")
        wait_for(lambda: browser.execute_script("return document.body.dataset.job") in ("done", "error"),
                 timeout=300, what="the analysis")
        settled(browser)
        assert browser.execute_script("return document.body.dataset.job") == "done", text(browser, "job-text")
        n = int(text(browser, "n-events"))
        assert 8 <= n <= 16 and text(browser, "n-kept") == str(n)  # the last 3 s hold 9-14 events
        rows = browser.find_elements("css selector", "#events tbody tr")
        assert len(rows) == n
        assert f"{n} of {n}" in text(browser, "summary")
        assert "analysis not saved" in text(browser, "dirty")
        screenshot(browser, "analysis-main.png")

        # the event viewer: a row click selects the event and centres the trace on it
        rows[2].click()
        wait_for(lambda: text(browser, "ev-title") == "#2", what="event #2 in the viewer")
        t2 = float(rows[2].find_elements("tag name", "td")[1].text)
        lo, hi = (float(v) for v in re.findall(r"[\d.]+", text(browser, "view-range"))[:2])
        assert lo < t2 < hi
        body = browser.find_element("tag name", "body")
        body.send_keys(Keys.ARROW_RIGHT)
        wait_for(lambda: text(browser, "ev-title") == "#3", what="next event")
        body.send_keys(Keys.ARROW_LEFT)
        wait_for(lambda: text(browser, "ev-title") == "#2" and "kept" in text(browser, "ev-state"), what="back")
        settled(browser)
        screenshot(browser, "analysis-event.png")

        # delete it with a key: table, counts and statistics follow at once
        body.send_keys(Keys.DELETE)
        wait_for(lambda: text(browser, "n-kept") == str(n - 1), what="the deletion")
        wait_for(lambda: f"{n - 1} of {n}" in text(browser, "summary"), what="statistics")
        assert "excluded" in text(browser, "ev-state") and "1 unsaved change" in text(browser, "dirty")
        assert "excluded" in browser.find_element("css selector", '#events tr[data-i="2"]').get_attribute("class")
        body.send_keys("z")  # undo, and delete again
        wait_for(lambda: text(browser, "n-kept") == str(n), what="undo")
        body.send_keys(Keys.DELETE)
        wait_for(lambda: text(browser, "n-kept") == str(n - 1), what="the deletion again")
        canvas = browser.find_element("id", "trace")
        before = text(browser, "view-range")
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 300).perform()
        wait_for(lambda: text(browser, "view-range") != before, what="wheel zoom")
        settled(browser)

        # a closed tab loses nothing
        browser.get("about:blank")
        open_page(browser, servers[0].url)
        assert text(browser, "n-kept") == str(n - 1) and "unsaved" in text(browser, "dirty")

        # nor does a killed server: the next one offers the work back
        servers[0].kill()
        servers.append(CliServer("app", *args, cwd=tmp_path, timeout=90))
        open_page(browser, servers[1].url)
        assert text(browser, "n-events") == "0"
        wait_for(lambda: browser.find_element("id", "offer").is_displayed(), what="the offer")
        assert f"{n} events, 1 removed by hand" in text(browser, "offer-text")
        browser.find_element("id", "offer-restore").click()
        wait_for(lambda: text(browser, "n-kept") == str(n - 1), what="the restored work")
        settled(browser)
        assert text(browser, "recinfo").startswith("3 s of 10 s")
        # the settings panel shows what the restored analysis was made with
        assert "restored analysis" in text(browser, "settings-note-text") and "gc-robust" in text(browser, "settings-note-text")
        assert browser.find_element("id", "s-window_size").get_attribute("value") == "600"

        # save through the dialog
        browser.find_element("id", "save-btn").click()
        folder = browser.find_element("id", "save-folder").get_attribute("value")
        assert folder == str(tmp_path / "results" / "public10")
        browser.find_element("id", "save-go").click()
        wait_for(lambda: browser.execute_script("return document.body.dataset.saved") == folder, what="the save")
        wait_for(lambda: not browser.find_element("id", "dirty").is_displayed(), what="saved state")
    finally:
        for server in servers:
            server.kill()

    stored = read_results(folder)
    assert len(stored.events) == n and len(stored.kept_events) == n - 1
    assert stored.events["excluded"].to_numpy().nonzero()[0].tolist() == [2]
    assert stored.prediction is not None and stored.recording["metadata"]["preprocessing"][0]["step"] == "cut"
    table = pd.read_csv(Path(folder) / "events.csv")
    assert len(table) == n and table["excluded"].tolist().count(True) == 1 and bool(table["excluded"][2])
    assert int(pd.read_csv(Path(folder) / "summary.csv")["count"][0]) == n - 1
    assert (ARTIFACTS / "analysis-main.png").stat().st_size > 20_000
    print(f"\nscreenshots: {ARTIFACTS / 'analysis-main.png'}, {ARTIFACTS / 'analysis-event.png'}")


def data(driver, element_id: str, key: str):
    return driver.execute_script(f"return document.getElementById('{element_id}').dataset.{key}")


def check_statistics_plots(browser, n: int, downloads: Path) -> None:
    """Histograms with ticks on both axes (counts on y), cumulative amplitude and interval
    plots, the decay fit on the average event, and the PNG figure export."""
    import json

    stats = browser.execute_script("return A.stats")
    shown = [hg for hg in stats["histograms"] if hg["column"] in ("amplitude", "rise_time_s", "half_decay_s", "interval_s")]
    assert len(shown) == 4
    for hg in shown:
        canvas = "h-" + hg["column"]
        xticks, yticks = json.loads(data(browser, canvas, "xticks")), json.loads(data(browser, canvas, "yticks"))
        assert len(xticks) >= 3 and xticks[0] >= hg["edges"][0] - 1e-9 and xticks[-1] <= hg["edges"][-1] + 1e-9
        assert yticks[0] == 0 and all(float(v).is_integer() for v in yticks) and yticks[-1] <= max(hg["counts"])
        assert len(yticks) >= 2
    for column in ("amplitude", "interval_s"):
        cum = next(c for c in stats["cumulative"] if c["column"] == column)
        assert cum["n"] == (n if column == "amplitude" else n - 1) and cum["fraction"][-1] == 1
        assert json.loads(data(browser, "c-" + column, "yticks"))[0] == 0
    assert float(data(browser, "average", "fit")) == pytest.approx(stats["summary"]["tau_decay_s"] * 1e3)
    assert "decay fit" in text(browser, "avg-cap")
    browser.execute_script("document.getElementById('c-interval_s').scrollIntoView()")
    screenshot(browser, "analysis-stats.png")
    # the figure export: one PNG download with every plot, at twice the screen resolution
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.find_element("id", "export-fig").click()
    png = downloads / "cell-statistics.png"
    wait_for(lambda: png.is_file() and png.stat().st_size > 20_000, what="the figure download")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 2400 and int.from_bytes(head[20:24], "big") == 2 * (34 + 750)


def check_fixed_viewer_scale(browser) -> None:
    """With 'fixed y scale' the event viewer keeps one y range from event to event."""
    from selenium.webdriver.common.keys import Keys

    body = browser.find_element("tag name", "body")

    def viewer_range():
        return data(browser, "viewer", "ylo"), data(browser, "viewer", "yhi")

    ranges = set()
    for _ in range(3):  # free scale: each event its own range
        title = text(browser, "ev-title")
        body.send_keys(Keys.ARROW_RIGHT)
        wait_for(lambda: text(browser, "ev-title") != title, what="the next event")
        settled(browser)
        ranges.add(viewer_range())
    assert len(ranges) > 1
    browser.find_element("id", "ev-lock-y").click()
    fixed = viewer_range()
    for _ in range(3):
        title = text(browser, "ev-title")
        body.send_keys(Keys.ARROW_RIGHT)
        wait_for(lambda: text(browser, "ev-title") != title, what="the next event")
        settled(browser)
        assert viewer_range() == fixed
    browser.find_element("id", "ev-lock-y").click()
    assert viewer_range() != fixed
    body.send_keys(Keys.HOME)


def _alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        alert.text  # noqa: B018 - raises while there is none
        return alert
    except NoAlertPresentException:
        return None


def classic_results(tmp_path: Path) -> tuple[Path, Path, int]:
    """A synthetic recording and, in the app's default results folder for it, results of the
    deconvolution detector made with settings other than the defaults (fast: no model)."""
    from minidet import detect, load
    from minidet.report import write_results
    from train_synthetic import synthetic_recording, write_h5_recording

    rec, _ = synthetic_recording(duration_s=3, n_events=20, amplitude=15, noise_sd=1.5)
    (tmp_path / "data").mkdir()
    source = write_h5_recording(tmp_path / "data" / "cell.h5", rec)
    result = detect(load(source), method="deconvolution", window_size=480, peak_w=7, rel_prom_cutoff=0.4)
    out = tmp_path / "results" / "cell"
    write_results(result, out)
    return source, out, len(result.events_all)


def test_reopened_recording_offers_its_results_with_their_settings(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    source, out, n = classic_results(tmp_path)
    server = CliServer("app", source, "--out", tmp_path / "results", "--state-dir", tmp_path / "state",
                       cwd=tmp_path, timeout=90)
    try:
        open_page(browser, server.url)
        assert text(browser, "n-events") == "0"
        wait_for(lambda: browser.find_element("id", "saved-offer").is_displayed(), what="the saved results offer")
        assert str(out) in text(browser, "saved-offer-text") and f"{n} of {n} events" in text(browser, "saved-offer-text")
        assert not browser.find_element("id", "settings-note").is_displayed()
        browser.find_element("id", "saved-open").click()
        wait_for(lambda: text(browser, "n-events") == str(n), what="the results")
        settled(browser)
        # the panel shows the results' own settings and method, and says where they come from
        assert browser.find_element("id", "s-window_size").get_attribute("value") == "480"
        assert browser.find_element("id", "s-peak_w").get_attribute("value") == "7"
        assert browser.find_element("id", "s-rel_prom_cutoff").get_attribute("value") == "0.4"
        # every field comes from the declared settings (minidet.params): choices, bounds, help
        kinetics = Select(browser.find_element("id", "s-kinetics_method"))
        assert [o.get_attribute("value") for o in kinetics.options] == ["", "fit", "filtered"]
        assert kinetics.first_selected_option.get_attribute("value") == "fit"  # the results' own
        assert [o.get_attribute("value") for o in Select(browser.find_element("id", "s-predict_mode")).options] == [
            "", "fast", "full"]
        sample = browser.find_element("id", "s-auto_inverted_s")
        assert sample.get_attribute("value") == "30" and sample.get_attribute("min") == "0"
        window = browser.find_element("id", "s-window_size")
        assert window.get_attribute("min") == "30"
        assert "Samples of the recording in one window" in window.find_element("xpath", "..").get_attribute("title")
        assert browser.find_element("id", "s-convolve_win").get_attribute("min") == "0"
        assert Select(browser.find_element("id", "method")).first_selected_option.get_attribute("value") == "deconvolution"
        assert f"results in {out}" in text(browser, "settings-note-text")
        assert not browser.find_element("id", "saved-offer").is_displayed()
        assert f"saved in {out}" in text(browser, "saved-where")
        screenshot(browser, "analysis-results.png")
        check_statistics_plots(browser, n, tmp_path / "downloads")
        check_fixed_viewer_scale(browser)
        # Analyze repeats them
        browser.find_element("id", "analyze").click()
        wait_for(lambda: browser.execute_script("return document.body.dataset.job") == "done", timeout=120,
                 what="the analysis")
        settled(browser)
        settings = browser.execute_script("return A.state.result.settings")
        assert (settings["window_size"], settings["peak_w"], settings["rel_prom_cutoff"]) == (480, 7, 0.4)
        assert int(text(browser, "n-events")) == n
        # save: a message names the folder and the files, and the header keeps the folder
        browser.find_element("tag name", "body").send_keys(Keys.DELETE)
        wait_for(lambda: text(browser, "n-kept") == str(n - 1), what="the deletion")
        assert not browser.find_element("id", "saved-where").is_displayed()
        browser.find_element("id", "save-btn").click()
        assert browser.find_element("id", "save-folder").get_attribute("value") == str(out)
        browser.find_element("id", "save-go").click()
        # a new analysis: saving over the results it started from asks first
        alert = wait_for(lambda: _alert(browser), what="the overwrite question")
        assert "already holds results" in alert.text
        alert.accept()
        wait_for(lambda: browser.execute_script("return document.body.dataset.saved") == str(out), what="the save")
        status = browser.find_element("id", "status")
        assert f"saved to {out}: " in status.get_attribute("textContent") and "events.csv" in status.get_attribute("textContent")
        wait_for(lambda: browser.find_element("id", "saved-where").is_displayed(), what="the saved folder")
        assert text(browser, "saved-where") == f"saved in {out}"
    finally:
        server.kill()
    assert len(read_results(out).kept_events) == n - 1
