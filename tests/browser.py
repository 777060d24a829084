"""Debian's headless Chromium for the browser tests (skipped where the system has none)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium(expect_timeout_ms: int | None = None) -> Iterator[Any]:
    """One headless Chromium, closed on exit; ``expect_timeout_ms`` sets Playwright's
    ``expect`` timeout."""
    if not Path(CHROMIUM).exists() or not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed; the CI installs Debian's chromium package")
    from playwright.sync_api import expect, sync_playwright

    if expect_timeout_ms is not None:
        expect.set_options(timeout=expect_timeout_ms)
    manager = sync_playwright().start()
    browser = manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        manager.stop()
