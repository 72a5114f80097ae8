"""Where audience definitions are kept, and the errors every kind shares.

The operations of :mod:`parents`, :mod:`segments` and :mod:`activations`
open the catalog and the warehouse through here, so that each takes an
optional :class:`Settings` (tests and ``apply`` pass their own) and so that a
missing, taken or still used name is reported the same way everywhere. The
rules of the definitions themselves are in :mod:`cohortsync.definitions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from cohortsync.catalog import audiences
from cohortsync.catalog.audiences import S, Saved
from cohortsync.catalog.db import open_catalog
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings
from cohortsync.warehouse.base import Engine

# A kind of definition (its ``kind``) -> the command group that manages it.
_COMMAND = {
    "parent": "audience parent",
    "segment": "segment",
    "activation": "activation",
}


def not_found(kind: str, name: str) -> ConfigError:
    """The error for a name that is not in the catalog."""
    return ConfigError(f"no {kind} named {name!r}", hint=f"see 'cohortsync {_COMMAND[kind]} list'")


def exists_already(kind: str, name: str) -> ConfigError:
    """The error for creating a name that is taken."""
    return ConfigError(
        f"a {kind} named {name!r} exists already",
        hint=f"pick another name, or delete it first with 'cohortsync {_COMMAND[kind]} delete'",
    )


@contextmanager
def catalog(settings: Settings | None = None) -> Iterator[sa.Engine]:
    """The catalog of ``settings`` (the environment's by default), closed after use."""
    engine = open_catalog((settings or Settings()).catalog_path)
    try:
        yield engine
    finally:
        engine.dispose()


def get_saved(kind: type[S], name: str, settings: Settings | None = None) -> S:
    """The saved definition of ``kind`` named ``name``.

    Raises:
        ConfigError: there is none.
    """
    with catalog(settings) as engine:
        row = audiences.get(engine, kind, name)
    if row is None:
        raise not_found(kind.kind, name)
    return row


def list_saved(kind: type[S], settings: Settings | None = None, **where: str | None) -> list[S]:
    """Every saved definition of ``kind`` by name; ``where`` filters on the given columns.

    A ``None`` filter is no filter, so ``list_saved(SavedSegment, parent=None)``
    lists every segment.
    """
    filters = {column: value for column, value in where.items() if value is not None}
    with catalog(settings) as engine:
        return audiences.list_rows(engine, kind, **filters)


def refuse_taken(engine: sa.Engine, kind: type[S], name: str) -> None:
    """Refuse to create a definition of ``kind`` under a name that is taken.

    Raises:
        ConfigError: a definition of that kind has the name already.
    """
    if audiences.get(engine, kind, name) is not None:
        raise exists_already(kind.kind, name)


def delete_unused(
    kind: type[Saved], name: str, *, users: type[S], settings: Settings | None = None
) -> None:
    """Delete a definition no row of ``users`` refers to (segments to a parent...).

    The rows of ``users`` name what they use in a column called after its
    kind (a segment's ``parent``, an activation's ``segment``); the catalog's
    foreign keys refuse the delete when one was saved since the check.

    Raises:
        ConfigError: there is no such definition, or some ``users`` still use it.
    """
    dependents = f"{users.kind}s"
    with catalog(settings) as engine:
        using = [row.name for row in audiences.list_rows(engine, users, **{kind.kind: name})]
        if using:
            raise ConfigError(
                f"{kind.kind} {name!r} is used by {dependents}: {', '.join(using)}",
                hint=f"delete those {dependents} first",
            )
        try:
            deleted = audiences.delete(engine, kind, name)
        except sa.exc.IntegrityError:  # one was saved meanwhile
            article = "an" if users.kind[0] in "aeiou" else "a"
            raise ConfigError(
                f"{kind.kind} {name!r} is used by {article} {users.kind}",
                hint=f"delete its {dependents} first",
            ) from None
    if not deleted:
        raise not_found(kind.kind, name)


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
