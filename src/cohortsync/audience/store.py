"""Where audience definitions are kept, and the errors every kind shares.

The operations of :mod:`parents`, :mod:`segments` and :mod:`activations`
open the catalog and the warehouse through here, so that each takes an
optional :class:`Settings` (tests and ``apply`` pass their own) and so that a
missing or taken name is reported the same way everywhere. The rules of the
definitions themselves are in :mod:`cohortsync.definitions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import sqlalchemy as sa

from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse.base import Engine

Kind = Literal["parent", "segment", "activation"]

_LIST_COMMAND: dict[Kind, str] = {
    "parent": "cohortsync audience parent list",
    "segment": "cohortsync segment list",
    "activation": "cohortsync activation list",
}


def not_found(kind: Kind, name: str) -> ConfigError:
    """The error for a name that is not in the catalog."""
    return ConfigError(f"no {kind} named {name!r}", hint=f"see '{_LIST_COMMAND[kind]}'")


def exists_already(kind: Kind, name: str) -> ConfigError:
    """The error for creating a name that is taken."""
    return ConfigError(
        f"a {kind} named {name!r} exists already",
        hint=f"pick another name, or delete it first with 'cohortsync {_command(kind)} delete'",
    )


def _command(kind: Kind) -> str:
    return "audience parent" if kind == "parent" else kind


@contextmanager
def catalog(settings: Settings | None = None) -> Iterator[sa.Engine]:
    """The catalog of ``settings`` (the environment's by default), closed after use."""
    engine = open_catalog((settings or Settings()).catalog_path)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def warehouse(url: str | None, settings: Settings | None = None) -> Iterator[Engine]:
    """A warehouse engine for a parent's URL; ``None`` is the configured warehouse."""
    # Imported here: DuckDB is loaded only by commands that open the warehouse.
    from cohortsync.warehouse import open_engine

    settings = settings or Settings()
    engine = open_engine(url or settings.warehouse_url)
    try:
        yield engine
    finally:
        engine.close()
