"""A real Chromium driven by Playwright, shared by the browser tests of a suite.

Debian's Chromium (``/usr/bin/chromium``) is launched once per suite (a
package of tests, through a package-scoped fixture in its conftest); each
test gets its own browser context, so cookies and sessions never leak from
one test into the next. Playwright's own browser download is never used.

Why per suite and not per test run: while Playwright's synchronous API is
started, it keeps an asyncio loop running in the test's thread, so any later
test that calls ``asyncio.run`` (every export does) would fail with "cannot
be called from a running event loop". Stopping it at the end of the suite
hands the thread back; inside a browser suite, run such work in a thread of
its own.

Screenshots go to ``$COHORTSYNC_ARTIFACTS/screenshots`` (default
``test-artifacts/screenshots`` in the checkout): artifacts of the run to look
at, not committed. The suite's workers write there at once, so each file is
written whole under a temporary name and then renamed: a reader (or a run
that stops half-way) never sees half a PNG, and each name belongs to one test.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def running_chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, with the flags every browser test uses.

    Fails (or skips, without ``COHORTSYNC_REQUIRE_ALL``) when Playwright or
    Chromium is missing.
    """
    from services import missing_service

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        missing_service("playwright is not installed")
    if not CHROMIUM.exists():
        missing_service(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def fresh_page(browser: Any, node: Any) -> Iterator[Any]:
    """A new context and page of ``browser``; on a failed test, a ``FAILED-<test id>.png``.

    The test's whole id (its file, class and parameters), so two failed tests
    of the same name in different files keep a picture each.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(node, "report_call", None)
        if report is not None and report.failed:
            screenshot(page, f"FAILED-{node.nodeid}")
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``<name>.png`` among the run's artifacts.

    Written to a temporary file in the same directory, then renamed over the
    name: atomic, whichever worker writes last.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (_file_name(name) + ".png")
    image = page.screenshot(full_page=True)
    handle, partial = tempfile.mkstemp(dir=SCREENSHOTS, prefix=f".{path.stem}-", suffix=".part")
    try:
        os.fchmod(handle, 0o644)  # as a plain write would leave it, not mkstemp's 0600
        with os.fdopen(handle, "wb") as file:
            file.write(image)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


# A file name has at most 255 bytes; a test id with long parameters can be longer.
_LONGEST_NAME = 180


def _file_name(name: str) -> str:
    """``name`` as a file name: unsafe characters as ``-``, a long one cut, kept apart by a hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    if len(safe) <= _LONGEST_NAME:
        return safe
    return f"{safe[:_LONGEST_NAME]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
