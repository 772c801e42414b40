"""The HTML report in real headless Chromium (Debian's chromium via Playwright): loads with no console
errors, the filters work, a screenshot is taken, and a report built from hostile strings runs no script."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from nectar_audit.reports import html as html_report
from tests.lab.browser import CHROMIUM, require_browser
from tests.reports.samples import sample_hosts


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = require_browser()
    page_file = tmp_path / "report.html"
    page_file.write_text(html_report.render(sample_hosts()), encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    messages: list[str] = []
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, timeout=60_000,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"],
            )
            try:
                page = context.new_page()
                page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
                page.goto(page_file.as_uri(), timeout=30_000)
                assert page.evaluate("typeof window.__pwned") == "undefined"
                assert page.title() == "nectar-audit report"
                visible = "article.check:not(.hidden)"
                assert page.locator(visible).count() == 9
                page.uncheck("input.f-status[value=pass]")
                assert page.locator(visible).count() == 8
                page.uncheck("input.f-status[value=fail]")
                assert page.locator(visible).count() == 5  # fail x3 (one waived) hidden too
                page.check("input.f-status[value=fail]")
                page.select_option("#f-check", "Check-Security-02")
                assert page.locator(visible).count() == 1
                assert page.locator("#matrix td[data-check]:not(.hidden)").count() == 3
                page.select_option("#f-check", "")
                page.check("input.f-status[value=pass]")
                assert page.locator(visible).count() == 9
                page.set_viewport_size({"width": 390, "height": 844})
                page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(tmp_path / "laptop.png"))
                assert (tmp_path / "laptop.png").stat().st_size > 1000
                assert page.evaluate("typeof window.__pwned") == "undefined"
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    bad = [m for m in messages if m.startswith(("error", "warning"))]
    assert not bad and not errors, (bad, errors)
