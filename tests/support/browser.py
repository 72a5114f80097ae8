"""A real Chromium driven by Playwright, shared by every browser test of a run.

Debian's Chromium (``/usr/bin/chromium``) is launched once per test run
(starting it is the slow part); each test gets its own browser context, so
cookies and sessions never leak from one test into the next. Playwright's own
browser download is never used.

Screenshots go to ``$COHORTSYNC_ARTIFACTS/screenshots`` (default
``test-artifacts/screenshots`` in the checkout): artifacts of the run to look
at, not committed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("COHORTSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("COHORTSYNC_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
SCREENSHOTS = ARTIFACTS / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with the flags every browser test uses."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
    )


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``<name>.png`` among the run's artifacts."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path
