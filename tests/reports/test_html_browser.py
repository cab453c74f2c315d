"""The HTML report in a real browser: headless Chromium, offline, opened from disk.

Skipped unless Chromium, its chromedriver (Debian: ``apt-get install chromium
chromium-driver``) and the ``selenium`` package are installed. Selenium is given both
paths, so Selenium Manager never runs (it would try to download a driver).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asma_bench.reports.build import FigureOptions, write_report
from asma_bench.reports.tables import ReportOptions

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    binary = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(
            "Chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # offline: any host name fails to resolve and any connection goes nowhere
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, page: Path) -> dict:
    """Load ``page`` and report what a reader would hit: images that did not load, console
    errors, requests that left file://, and external URLs in the DOM."""
    driver.get_log("browser"), driver.get_log("performance")  # drop earlier pages' entries
    driver.get(page.as_uri())
    images = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const wait = img => img.complete ? Promise.resolve()
            : new Promise(r => { img.onload = img.onerror = r; });
        const svgs = new Set(
            Array.from(document.querySelectorAll("a[href$='.svg']"), a => a.href));
        const linked = Array.from(svgs, href => {
            const img = new Image(); img.src = href; return img; });
        const all = [...document.images, ...linked];
        Promise.all(all.map(wait)).then(() => done(all.map(
            img => [img.getAttribute("src"), img.complete, img.naturalWidth])));
        """
    )
    external = driver.execute_script(
        """
        const out = [];
        for (const el of document.querySelectorAll("[src], [href], link, script, iframe")) {
            for (const name of ["src", "href"]) {
                const v = el.getAttribute(name);
                if (v && /^(https?:)?\\/\\//i.test(v.trim())) out.push(v);
            }
        }
        for (const el of document.querySelectorAll("[style], style"))
            if (/url\\(\\s*['"]?(https?:)?\\/\\//i.test(el.textContent + el.getAttribute("style")))
                out.push(el.outerHTML.slice(0, 80));
        return out;
        """
    )
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    return {
        "images": images,
        "broken": [src for src, complete, width in images if not complete or width == 0],
        "errors": [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        "requests": requests,
        "left_file": [u for u in requests if not u.startswith(("file://", "data:"))],
        "external": external,
    }


@pytest.fixture(scope="module")
def report_page(fake_store, tmp_path_factory) -> Path:
    """Two grid reports in one folder: a sweep (curves, sensitivity) and an n x k grid."""
    out = tmp_path_factory.mktemp("browser") / "reports"
    fast = ReportOptions()
    opts = FigureOptions(embeddings=False, dataset=False)
    write_report("distill_tau", fake_store.uri, out, out, fast, figure_options=opts)
    done = write_report("mine", fake_store.uri, out, out, fast, "n9_k10", figure_options=opts)
    return done.index


def test_the_report_page_works_offline_in_a_browser(browser, report_page):
    seen = open_page(browser, report_page)
    srcs = [src for src, _, _ in seen["images"]]
    assert "mine/figures/mine_heatmap.png" in srcs
    assert "distill_tau/figures/distill_tau_tau_curve.png" in srcs
    assert "distill_tau/figures/distill_tau_curves.png" in srcs
    assert any(s.endswith(".svg") for s in srcs)  # the linked SVGs render too
    assert not seen["broken"], seen["broken"]
    assert not seen["errors"], seen["errors"]
    assert not seen["external"], seen["external"]
    assert seen["requests"] and not seen["left_file"], seen["left_file"]
    assert browser.title == "asma-bench report"
    assert len(browser.find_elements("css selector", "h2")) == 2  # one section per grid


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    """What the test above asserts can fail: a missing image, an external script."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><head><title>x</title>"
        "<script src='https://cdn.example.invalid/lib.js'></script></head>"
        "<body><img src='missing.png' alt='gone'></body></html>"
    )
    seen = open_page(browser, page)
    assert seen["broken"] == ["missing.png"]
    assert seen["external"] == ["https://cdn.example.invalid/lib.js"]
    assert any(u.startswith("https://cdn.example.invalid") for u in seen["left_file"])
    assert seen["errors"]  # the failed loads are console errors
