"""Debian's Chromium through Playwright, for the tests that look at the HTML report in a real browser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


def require_browser() -> Any:
    """playwright.sync_api, with Debian's chromium present; under CI=true a missing one fails."""
    if os.environ.get("CI") == "true":
        import playwright.sync_api  # a missing prerequisite fails in CI

        assert Path(CHROMIUM).exists(), "apt-get install chromium"
        return playwright.sync_api
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    return sync_api
