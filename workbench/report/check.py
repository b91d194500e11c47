"""The report as a reader gets it: opened in a real browser, checked, and its first screen captured.

`check_report(html, screenshot)` opens `report.html` in headless Chromium (the system's own
browser, driven by Playwright; no browser is downloaded) and returns what a reader would trip
over: console errors, page errors, requests that leave the machine (the report must read
offline), images that did not decode, the answer cards missing, a plot whose text boxes overlap
(the report names it under the plot: `html.plot_overlap_note`). It saves a screenshot of the
first screen. Without Chromium or Playwright it says why in one line and checks nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from workbench.report.html import OVERLAP_CLASS

__all__ = ["BROWSERS", "ReportCheck", "check_report", "find_browser"]

#: Where Debian and others put Chromium (`apt-get install chromium`).
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# What this machine's closed network needs (Chromium otherwise tries Google's hosts at start).
_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]


@dataclass
class ReportCheck:
    """What the browser saw: `problems` empty means the report reads as intended."""

    skipped: str | None = None  # why nothing was checked (no browser), else None
    problems: list[str] = field(default_factory=list)
    cards: int = 0
    images: int = 0
    screenshot: Path | None = None


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_report(html: str | Path, screenshot: str | Path | None = None, *, width: int = 1280,
                 height: int = 900) -> ReportCheck:
    """Open `html` in headless Chromium; see the module docstring for what is checked."""
    browser_path = find_browser()
    if browser_path is None:
        return ReportCheck(skipped=f"no Chromium on PATH ({', '.join(BROWSERS)}): apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return ReportCheck(skipped="playwright is not installed: pip install playwright (no browser download needed)")
    page_url = Path(html).resolve().as_uri()
    out = ReportCheck()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: out.problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: out.problems.append(f"page error: {e}"))
            page.on("request", lambda r: out.problems.append(f"fetches {r.url} at view time")
                    if not r.url.startswith(("file:", "data:", "about:")) else None)
            page.goto(page_url, wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            out.images = len(images)
            bad = [i for i, (done, w, h) in enumerate(images) if not (done and w > 0 and h > 0)]
            if bad:
                out.problems.append(f"{len(bad)} of {len(images)} images did not decode")
            overlaps = page.evaluate(f"Array.from(document.querySelectorAll('.{OVERLAP_CLASS}'), e => e.textContent)")
            out.problems += [f"plot {text}" for text in overlaps]
            out.cards = int(page.evaluate("document.querySelectorAll('.wb-card').length"))
            if out.cards == 0:
                out.problems.append("no answer cards on the first screen")
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
                out.screenshot = Path(screenshot)
        finally:
            browser.close()
    return out
