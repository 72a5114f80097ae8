"""What every route of the console reaches: the settings, the catalog and the pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from fastapi import Request

from cohortsync.console.launches import Launches
from cohortsync.settings import Settings
from cohortsync.web.pages import NavItem, Pages

TEMPLATES = Path(__file__).with_name("templates")

NAVIGATION = (
    NavItem("Integrations Hub", "/hub"),
    NavItem("Data Workbench", "/queries"),
    NavItem("Audience Studio", "/audience"),
    NavItem("Runs", "/runs"),
)


@dataclass
class Console:
    """The console's shared state, built once per app (:func:`.app.create_app`).

    ``settings`` is passed to every library call, so the console works on
    the home it was started on, whatever the environment says later.
    ``launches`` are the runs started from this console's pages.
    """

    settings: Settings
    catalog: sa.Engine
    pages: Pages
    launches: Launches


def console_of(request: Request) -> Console:
    """The route dependency that hands the console's state to a route."""
    console: Console = request.app.state.console
    return console


def console_pages() -> Pages:
    return Pages(TEMPLATES, title="cohortsync console", nav=NAVIGATION, home="/hub")
