"""Server-rendered pages: one Jinja2 environment per side, over the shared layout.

A side (the console, the dashboard) gives its own template directory; the
shared one (``web/templates``) comes after it, so a side's pages extend
``web/base.html`` and import ``web/forms.html`` while keeping their own
names. Autoescaping is on for every template.

Every page gets ``url()``, which prefixes the path the side is mounted at
(the dashboard lives under ``/dashboard``), the session's ``csrf_token`` and
the side's navigation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

WEB_TEMPLATES = Path(__file__).with_name("templates")
WEB_STATIC = Path(__file__).with_name("static")
STATIC_PREFIX = "/static"


@dataclass(frozen=True)
class NavItem:
    """One entry of a side's navigation: its label and the path it opens."""

    label: str
    path: str
    exact: bool = False
    """Marked current only on its own path, not on the pages under it (a home page)."""


def prefixed(request: Request, path: str) -> str:
    """``path`` under the path the app is mounted at (its ASGI ``root_path``)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def redirect(request: Request, path: str) -> RedirectResponse:
    """A 303 to ``path`` of this side: after a form, the browser GETs the next page."""
    return RedirectResponse(prefixed(request, path), status_code=303)


class Pages:
    """Renders a side's templates with the shared layout.

    Args:
        templates: the side's own template directory.
        title: the product name in the header and the window title.
        nav: the side's navigation, in order.
        home: the path a logged-in user starts at.
        user_label: what the login form calls the account ("Email" on the dashboard).
    """

    def __init__(
        self,
        templates: Path,
        *,
        title: str,
        nav: Sequence[NavItem],
        home: str = "/",
        user_label: str = "User name",
    ) -> None:
        self.title = title
        self.user_label = user_label
        self.nav = tuple(nav)
        self.home = home
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(templates), jinja2.FileSystemLoader(WEB_TEMPLATES)]
            ),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters["thousands"] = _thousands
        self.environment.globals["when"] = readable_time

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The page ``template`` rendered for ``request``."""
        session = getattr(request.state, "session", None)
        path = request.url.path.removeprefix(str(request.scope.get("root_path", "")))
        values = {
            "request": request,
            "title": self.title,
            "nav": self.nav,
            "home": self.home,
            "user_label": self.user_label,
            "session": session,
            "csrf_token": session.csrf_token if session is not None else "",
            "current_path": path or "/",
            "url": lambda target: prefixed(request, target),
            "static": lambda name: prefixed(request, f"{STATIC_PREFIX}/{name}"),
            **(context or {}),
        }
        html = self.environment.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def _thousands(value: Any) -> str:
    """``1234567`` as ``1,234,567``; anything else as text, and None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def readable_time(value: str | None) -> str:
    """An ISO-8601 time as a person reads it: ``2026-12-02 14:41 UTC``; ``-`` for none.

    Every page shows times this way (templates call ``when(value)``): stored
    times are UTC with an offset, and a time with another offset is shown in
    UTC too. A date alone stays a date; a time without an offset is shown
    without a zone, since none is known. Text that is not a time is shown as is.
    """
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if len(value) == 10:
        return parsed.strftime("%Y-%m-%d")
    if parsed.utcoffset() is None:
        return parsed.strftime("%Y-%m-%d %H:%M")
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
