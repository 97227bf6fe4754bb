"""Shared set-up for the browser tests: Debian's Chromium driven by Playwright, headless, offline.

Import it at the top of a browser test module: it skips the module with a reason where Chromium is
missing, or fails it when ``HANDOFF_REQUIRE_BROWSER=1`` (as CI sets).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# no background networking: this machine's closed network refuses Chromium's own connections
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.access(CHROMIUM, os.X_OK):
    if os.environ.get("HANDOFF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HANDOFF_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install -y chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.async_api")


@asynccontextmanager
async def open_page(timeout_ms: int) -> AsyncIterator[Any]:
    """A fresh headless page; any uncaught error on the page fails the test when it closes."""
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1440, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(timeout_ms)
            yield page
            assert errors == [], errors
        finally:
            await browser.close()
