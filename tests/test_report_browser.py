"""report.html as a reader gets it: rendered in headless Chromium, nothing broken, the answer first.

Needs Debian's `chromium` (`.ci/run` installs it) and Playwright (a dev dependency); without the
browser the test skips with one line saying how to get it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.synthetic_runs import HOSTED, write_concurrency, write_run
from workbench.analysis.catalog import METRICS
from workbench.report.check import check_report, find_browser
from workbench.runner import render_report

pytestmark = [pytest.mark.notebook, pytest.mark.slow,
              pytest.mark.skipif(find_browser() is None, reason="no Chromium: apt-get install chromium")]


def test_report_reads_offline_with_the_answer_first(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3, "caps": {"streaming": True}},
                               "slow": {"e2e": 0.3, "halluc": 0.05}})
    write_concurrency(run, "fast", {1: 0.05, 2: 0.08, 4: 0.2})
    cfile = tmp_path / "contenders.yaml"
    cfile.write_text(yaml.safe_dump({"contenders": [{"name": n, "model": n, **HOSTED} for n in ("fast", "slow")]}))
    html = render_report(run, params={"contenders_file": str(cfile), "n_boot": 200})
    seen = check_report(html, run / "report_first_screen.png")
    assert seen.skipped is None and seen.problems == []  # no console errors, nothing fetched, images decode
    assert seen.cards == 3 and seen.images >= 3
    assert (run / "report_first_screen.png").stat().st_size > 10_000
    text = html.read_text()
    assert text.index("wb-card") < text.index("How the answer was reached")  # the answer comes first
    from playwright.sync_api import sync_playwright  # what a reader reads: no internal metric names

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_browser(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(html.resolve().as_uri())
        visible = page.inner_text("body")
        browser.close()
    leaked = sorted(name for name in METRICS if name in visible)
    assert not leaked, f"internal metric names in the report: {leaked}"
