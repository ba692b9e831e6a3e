"""The scoring app end to end in a real headless Chromium: keys, wheel, kill, restart, resume."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from minidet.train.dataset import read_dataset
from web_helpers import wait_for


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready") == "1", what="the page")


def settled(driver) -> None:
    """Every change the page made has been answered by the server."""
    time.sleep(0.1)
    wait_for(lambda: driver.execute_script("return document.body.dataset.pending") == "0", what="saves")


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def test_score_kill_restart_resume(extracted: Path, score_server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys

    n = read_dataset(extracted).n
    suggested = read_dataset(extracted).scores.copy()
    server = score_server(extracted)
    open_page(browser, server.url)
    assert text(browser, "index") == "#1" and text(browser, "n-unscored") == str(n)
    body = browser.find_element("tag name", "body")

    body.send_keys("1")  # snippet 0: event, advance
    body.send_keys("0")  # snippet 1: no event, advance
    body.send_keys("2")  # snippet 2: exclude, advance
    wait_for(lambda: text(browser, "index") == "#4", what="advance to #4")
    body.send_keys("m")  # snippet 3: cycle its suggested score, stay
    settled(browser)
    assert text(browser, "index") == "#4"
    assert read_dataset(extracted).scores[3] == (suggested[3] + 1) % 3
    body.send_keys("z")  # undo the cycle
    body.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: text(browser, "index") == "#5", what="arrow right")
    canvas = browser.find_element("id", "snippet")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 120).perform()
    wait_for(lambda: text(browser, "index") == "#6", what="wheel down")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -60).perform()
    wait_for(lambda: text(browser, "index") == "#5", what="wheel up")
    settled(browser)
    assert text(browser, "n-event") == "1" and text(browser, "n-noevent") == "1" and text(browser, "n-exclude") == "1"
    assert text(browser, "n-unscored") == str(n - 3)
    assert f"3 / {n} scored" in text(browser, "progress-text")

    body.send_keys(Keys.HOME)
    wait_for(lambda: "event" in text(browser, "badge") and text(browser, "index") == "#1", what="snippet #1")
    body.send_keys("n")  # next unscored: snippet 3 (its cycle was undone)
    wait_for(lambda: text(browser, "index") == "#4", what="next unscored")
    time.sleep(0.6)  # the position is saved shortly after moving
    settled(browser)

    ds = read_dataset(extracted)  # what the server made durable, before it is killed
    assert ds.scores[:3].tolist() == [1, 0, 2] and ds.scored[:3].all()
    assert not ds.scored[3:].any() and ds.scores[3] == suggested[3]

    server.kill()  # SIGKILL: no chance to save anything more
    restarted = score_server(extracted)
    open_page(browser, restarted.url)
    assert text(browser, "index") == "#4"  # resumes where the person stopped
    assert text(browser, "n-unscored") == str(n - 3)
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.ARROW_LEFT)
    wait_for(lambda: text(browser, "index") == "#3" and "exclude" in text(browser, "badge"), what="#3 exclude")
    body.send_keys("1")
    settled(browser)

    # the page as a person sees it: a clear event, scored, with its context
    clear = int(np.flatnonzero((ds.category == 1) & (np.arange(n) > 3))[0])
    browser.find_element("id", "advance").click()  # stay on the snippet after scoring
    for _ in range(clear - 3):
        body.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: text(browser, "index") == f"#{clear + 1}", what="a clear event")
    body.send_keys("1")
    wait_for(lambda: "1 · event" in text(browser, "badge"), what="scored badge")
    wait_for(lambda: "shaded" in text(browser, "context-note"), what="context")
    settled(browser)
    shot = tmp_path / "scoring.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")

    restarted.terminate()
    final = read_dataset(extracted, apply_pending=False)  # folded into the HDF5 file itself
    assert final.scores[:3].tolist() == [1, 0, 1] and final.scores[clear] == 1 and int(final.scored.sum()) == 4
    assert np.array_equal(final.events, ds.events)


def test_page_follows_the_stored_order(extracted: Path, score_server, browser) -> None:
    """--order random: keys and auto-advance walk the session's order, not the extraction index."""
    from selenium.webdriver.common.keys import Keys

    server = score_server(extracted, "--order", "random", "--seed", "5")
    ds = read_dataset(extracted)
    order = np.argsort(ds.review_rank)
    assert not np.array_equal(order, np.arange(ds.n))
    open_page(browser, server.url)
    shown = lambda: browser.execute_script("return window.minidetScoring.index")  # noqa: E731
    assert shown() == order[0] and text(browser, "index") == "#1"
    assert f"snippet {order[0] + 1}" in text(browser, "meta") and "random order" in text(browser, "meta")
    body = browser.find_element("tag name", "body")
    body.send_keys("0")  # score the first in the order, advance to the second
    wait_for(lambda: shown() == order[1], what="advance along the order")
    body.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: shown() == order[2] and text(browser, "index") == "#3", what="arrow along the order")
    body.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    wait_for(lambda: shown() == order[0], what="back to the first")
    body.send_keys("n")  # next unscored after the first: the second in the order
    wait_for(lambda: shown() == order[1], what="next unscored along the order")
    settled(browser)
    server.terminate()
    final = read_dataset(extracted)
    assert final.scored.sum() == 1 and final.scored[order[0]] and final.scores[order[0]] == 0
