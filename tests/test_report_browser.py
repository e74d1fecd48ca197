"""The report opened in a real headless Chromium (Debian's chromium and chromium-driver, driven
by selenium): no console error, every chart drawn, nothing fetched from outside the file, and
a screenshot kept in tests/artefacts/ (gitignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.routing import topic_labels
from crawler.situation import Period, build
from crawler.situation_html import render
from tests import report_data
from tests.test_report import NORMS, ROUTING

ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
NETWORK = ("http:", "https:", "ws:", "wss:", "ftp:")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _found(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (name if Path(name).is_file() else None)
        if path:
            return path
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = _found(*CHROMIUM, "chromium")
    driver_path = _found("/usr/bin/chromedriver", "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Both paths given: selenium's driver manager (which would go online) is never asked.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_report_renders_offline_in_chromium(sqlite_inbox: Any, browser: Any) -> None:
    import json

    report_data.fill(sqlite_inbox)
    report = build(
        sqlite_inbox,
        Period(report_data.SINCE, report_data.UNTIL),
        norms=NORMS,
        routing=ROUTING,
        labels=topic_labels(),
    )
    ARTEFACTS.mkdir(exist_ok=True)
    page = ARTEFACTS / "report.html"
    page.write_text(render(report), encoding="utf-8")

    browser.get_log("performance")  # drop what the new tab page loaded before
    browser.get(page.as_uri())
    assert browser.title.startswith("Ситуационный отчёт")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    charts = browser.execute_script(
        """return [...document.querySelectorAll('svg.chart')].map(s => {
            const box = s.getBoundingClientRect();
            return [s.getAttribute('aria-label'), box.width, box.height,
                    s.querySelectorAll('path, use').length];
        });"""
    )
    assert [c[0] for c in charts] == [
        "Точки напряжённости",
        "Доля ответов в норматив по муниципалитетам",
        "Динамика по темам",
    ]
    for name, width, height, shapes in charts:
        assert width > 200 and height > 100 and shapes > 10, name
    heat = browser.execute_script(
        "return document.querySelectorAll('table.heat td[data-residents]').length"
    )
    assert heat == 5
    # Nothing but the file itself was loaded: no resource entries, and the network log of
    # the DevTools protocol names only file: and data: addresses.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    sent = [
        message["params"]
        for entry in browser.get_log("performance")
        for message in [json.loads(entry["message"])["message"]]
        if message["method"] == "Network.requestWillBeSent"
    ]
    # The page's own requests (Chromium's new tab page may still be loading its chrome:// parts).
    own = [p["request"]["url"] for p in sent if p.get("documentURL") == page.as_uri()]
    assert own and all(url.startswith(("file:", "data:")) for url in own), own
    network = [p["request"]["url"] for p in sent if p["request"]["url"].startswith(NETWORK)]
    assert network == []

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 120, 12000))
    assert browser.save_screenshot(str(ARTEFACTS / "report.png"))
    assert (ARTEFACTS / "report.png").stat().st_size > 50_000
