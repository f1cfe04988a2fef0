"""The evidence pages in a real browser: Debian's headless Chromium, driven by Selenium, on a
daemon fed by the local broker; and the report file opened with networking off.

Screenshots of each page type go to ``test-output/pages/``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import orjson
import pytest
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from support.daemon import setup_daemon, stored_results, windows_done
from support.kafka import DaemonProcess, wait_for
from support.ops import ROOT, tool

from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.report import write_report
from driftwarden.monitor.storage import evidence

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-output" / "pages"
ALERTS = (
    "alerts:\n  group_wait: 0s\n  max_window_age: 3650d\n  channels: {log: {type: log}}\n"
    "  rules: [{name: drift, match: [kind=data_drift], severity: warning, channels: [log]}]\n"
)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium logging its console and its network requests."""
    options = Options()
    options.binary_location = tool("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,2400",
                     "--force-prefers-reduced-motion"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(tool("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _requests(driver: webdriver.Chrome) -> list[str]:
    """The URLs the browser asked for since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _console_errors(driver: webdriver.Chrome) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _open(driver: webdriver.Chrome, url: str, shot: str) -> None:
    driver.set_window_size(1280, 900)
    driver.get(url)
    assert driver.find_element(By.TAG_NAME, "h1").text
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 40, 12_000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{shot}.png"))
    assert _console_errors(driver) == [], url
    for requested in _requests(driver):
        parts = urlsplit(requested)
        assert parts.scheme in ("data", "file") or parts.hostname == "127.0.0.1", requested


def _records(driver: webdriver.Chrome, index: int | None = None) -> dict[tuple, str]:
    """What the page shows of each record (of window ``index`` in a report): key → value."""
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.record")
    if index is not None:
        rows = [
            row
            for row in rows
            if row.find_element(By.XPATH, "ancestor::section").get_attribute("data-window")
            == str(index)
        ]
    names = ("kind", "detector", "feature", "metric", "group")
    return {
        tuple(row.get_attribute(f"data-{n}") for n in names): row.get_attribute("data-value")
        for row in rows
    }


def _incidents(engine) -> list[evidence.Incident]:
    with engine.connect() as connection:
        return evidence.incidents(connection)


def _expected(url: str, index: int) -> dict[tuple, str]:
    return {
        (r.kind, r.detector, r.feature or "", r.metric or "", r.group_attribute or ""): (
            "" if r.value is None else repr(r.value)
        )
        for r in stored_results(url).values()
        if r.window_index == index
    }


def test_each_page_type_in_chromium_on_a_daemon_fed_by_the_broker(
    tmp_path: Path,
    broker: str,
    topic: str,
    reference_file: Path,
    stream_lines: list[bytes],
    browser: webdriver.Chrome,
) -> None:
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = setup_daemon(tmp_path, url, reference_file, broker, topic, extra=ALERTS)
    port = yaml.safe_load(config.read_text())["http"]["port"]
    base = f"http://127.0.0.1:{port}"
    engine = storage.create(url)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url), 120, "all windows to close")
        incidents = wait_for(lambda: _incidents(engine), 60, "an incident's notification")
        model = quote(synthetic.MODEL, safe="")
        results = stored_results(url)
        last = max(r.window_index for r in results.values())
        drifting = sorted(
            {r.feature for r in results.values()
             if r.window_index == last and r.kind == "data_drift" and r.drift}
        )  # fmt: skip
        assert set(drifting) == set(synthetic.DEFAULT_DRIFT)

        _open(browser, f"{base}/ui/", "fleet")
        rows = browser.find_elements(By.CSS_SELECTOR, "tr.model")
        assert [row.get_attribute("data-model") for row in rows] == [synthetic.MODEL]

        _open(browser, f"{base}/ui/models/{model}", "model")
        cells = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap rect")
        assert {c.get_attribute("data-window") for c in cells} == {
            str(r.window_index) for r in results.values()
        }

        _open(browser, f"{base}/ui/models/{model}/windows/{last}", "window")
        assert _records(browser) == _expected(url, last)
        charted = {
            svg.get_attribute("data-feature")
            for svg in browser.find_elements(By.CSS_SELECTOR, "svg.histogram")
        }
        for feature in drifting:
            kind = "category" if feature in synthetic.CATEGORICAL else "value"
            assert f"{feature} ({kind})" in charted, feature
        _check_income_bins(browser, stream_lines, results, last)
        dark = [{"name": "prefers-color-scheme", "value": "dark"}]
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": dark})
        _open(browser, f"{base}/ui/models/{model}/windows/{last}", "window-dark")
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        assert background == "rgb(13, 17, 23)"  # the dark theme's background
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        _open(browser, f"{base}/ui/incidents/{incidents[0].id}", "incident")
        channels = browser.find_elements(By.CSS_SELECTOR, "tr[data-channel]")
        assert {row.get_attribute("data-channel") for row in channels} == {"log"}
        shown = {
            int(a.get_attribute("href").rsplit("/", 1)[1])
            for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='/windows/']")
        }
        drifted = {r.window_index for r in results.values() if r.kind == "data_drift" and r.drift}
        assert shown and shown <= drifted and last in shown
        assert daemon.stop() == 0

    report = tmp_path / "report.html"
    write_report(engine, synthetic.MODEL, report)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    _open(browser, report.as_uri(), "report")
    assert _records(browser, last) == _expected(url, last)
    in_report = {
        svg.get_attribute("data-feature")
        for svg in browser.find_elements(
            By.CSS_SELECTOR, f"section[data-window='{last}'] svg.histogram"
        )
    }
    assert in_report == charted
    engine.dispose()


def _check_income_bins(
    browser: webdriver.Chrome, stream_lines: list[bytes], results: dict, index: int
) -> None:
    """The window's ``income`` bars are the shares of the window's raw rows in their bins."""
    window = next(r for r in results.values() if r.window_index == index)
    events = [orjson.loads(line) for line in stream_lines]
    values = np.array(
        [
            e["features"]["income"]
            for e in events
            if window.window_start <= e["ts"] < window.window_end
            and e["features"]["income"] is not None
        ]
    )
    chart = browser.find_element(By.CSS_SELECTOR, "svg[data-feature='income (value)']")
    bars = chart.find_elements(By.CSS_SELECTOR, "rect[data-series='window']")
    assert len(bars) > 10
    for bar in bars:
        low, high = float(bar.get_attribute("data-low")), float(bar.get_attribute("data-high"))
        share = np.count_nonzero((values >= low) & (values < high)) / len(values)
        assert float(bar.get_attribute("data-share")) == pytest.approx(share, abs=1e-12)
