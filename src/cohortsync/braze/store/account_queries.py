"""Queries about who may call: workspaces, partners, partner API keys, data import keys.

:func:`partner_credentials` answers a partner call's three checks in one
statement, built once and bound per call; every request reads the keys from
the store, never from a cache, so an invalidated key is refused at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.database import Store
from cohortsync.braze.store.tables import (
    data_import_keys,
    partner_api_keys,
    partners,
    utc_now,
    workspace_partners,
    workspaces,
)

# ---------------------------------------------------------------- workspaces


def workspace_id_of(conn: sa.Connection, name_or_id: str) -> int | None:
    """The workspace named ``name_or_id``, else the one with that id (digits), else None."""
    condition = workspaces.c.name == name_or_id
    if name_or_id.isdigit():
        condition = sa.or_(condition, workspaces.c.id == int(name_or_id))
    found = conn.execute(
        sa.select(workspaces.c.id).where(condition).order_by(workspaces.c.id)
    ).scalar()
    return None if found is None else int(found)


def workspace_named(conn: sa.Connection, name: str) -> int | None:
    found = conn.execute(sa.select(workspaces.c.id).where(workspaces.c.name == name)).scalar()
    return None if found is None else int(found)


def replace_rest_api_key(conn: sa.Connection, workspace_id: int, rest_api_key: str) -> str:
    """Give the workspace ``rest_api_key`` instead of its current one; returns its name."""
    return str(
        conn.execute(
            sa.update(workspaces)
            .where(workspaces.c.id == workspace_id)
            .values(rest_api_key=rest_api_key)
            .returning(workspaces.c.name)
        ).scalar_one()
    )


def insert_workspace(
    conn: sa.Connection, name: str, rest_api_key: str, sources: str | None = None
) -> int:
    """A new workspace's id; ``sources``: its REST API key's stored allowlist, if any."""
    return int(
        conn.execute(
            sa.insert(workspaces)
            .values(
                name=name,
                rest_api_key=rest_api_key,
                created_at=utc_now(),
                rest_api_key_sources=sources,
            )
            .returning(workspaces.c.id)
        ).scalar_one()
    )


# Every REST request runs it: built once, its cache key computed once, bound per call.
_WORKSPACE_OF_REST_KEY = sa.select(workspaces.c.id, workspaces.c.rest_api_key_sources).where(
    workspaces.c.rest_api_key == sa.bindparam("rest_api_key", type_=sa.String)
)


def workspace_of_rest_key(conn: sa.Connection, rest_api_key: str) -> tuple[int, str | None] | None:
    """The workspace whose REST API key this is and the key's stored allowlist, or None."""
    found = conn.execute(_WORKSPACE_OF_REST_KEY, {"rest_api_key": rest_api_key}).first()
    return None if found is None else (int(found[0]), found[1])


def all_rest_api_keys(conn: sa.Connection) -> list[Any]:
    """Every workspace's ``id``, ``name``, ``rest_api_key`` and ``rest_api_key_sources``."""
    return list(
        conn.execute(
            sa.select(
                workspaces.c.id,
                workspaces.c.name,
                workspaces.c.rest_api_key,
                workspaces.c.rest_api_key_sources,
            ).order_by(workspaces.c.id)
        ).all()
    )


def workspace_row(conn: sa.Connection, workspace_id: int) -> Any:
    """The workspace's row (its REST API key and that key's allowlist among its columns)."""
    return conn.execute(sa.select(workspaces).where(workspaces.c.id == workspace_id)).one()


def set_rest_key_sources(conn: sa.Connection, workspace_id: int, sources: str | None) -> None:
    conn.execute(
        sa.update(workspaces)
        .where(workspaces.c.id == workspace_id)
        .values(rest_api_key_sources=sources)
    )


# ---------------------------------------------------------------- partners


def partner_named(conn: sa.Connection, name: str) -> Any:
    """The partner row of that name, or None."""
    return conn.execute(sa.select(partners).where(partners.c.name == name)).first()


def insert_partner(conn: sa.Connection, name: str, display_name: str, filter_name: str) -> int:
    return int(
        conn.execute(
            sa.insert(partners)
            .values(name=name, display_name=display_name, filter_name=filter_name)
            .returning(partners.c.id)
        ).scalar_one()
    )


def rename_partner(conn: sa.Connection, partner_id: int, changes: dict[str, str]) -> None:
    """Set ``display_name`` and/or ``filter_name``."""
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(**changes))


def partner_of_api_key(conn: sa.Connection, api_key: str) -> int | None:
    """The partner holding this partner API key, or None."""
    found = conn.execute(
        sa.select(partner_api_keys.c.partner_id).where(partner_api_keys.c.key == api_key)
    ).scalar()
    return None if found is None else int(found)


def insert_partner_api_key(conn: sa.Connection, api_key: str, partner_id: int, region: str) -> None:
    conn.execute(
        sa.insert(partner_api_keys).values(key=api_key, partner_id=partner_id, region=region)
    )


def delete_partner_api_key(conn: sa.Connection, api_key: str, partner_id: int) -> bool:
    """Remove the partner's API key ``api_key``; whether it had it."""
    deleted = conn.execute(
        sa.delete(partner_api_keys).where(
            partner_api_keys.c.key == api_key, partner_api_keys.c.partner_id == partner_id
        )
    )
    return deleted.rowcount == 1


def describe_partner(conn: sa.Connection, partner_id: int) -> dict[str, Any]:
    """``{"name", "display_name", "filter_name", "api_keys": [{"key", "region"}]}``."""
    row = conn.execute(sa.select(partners).where(partners.c.id == partner_id)).one()
    keys = conn.execute(
        sa.select(partner_api_keys.c.key, partner_api_keys.c.region)
        .where(partner_api_keys.c.partner_id == partner_id)
        .order_by(partner_api_keys.c.region, partner_api_keys.c.key)
    )
    return {
        "name": row.name,
        "display_name": row.display_name,
        "filter_name": row.filter_name,
        "api_keys": [{"key": key, "region": region} for key, region in keys],
    }


def enable_partner(store: Store, conn: sa.Connection, workspace_id: int, partner_id: int) -> None:
    """Let the workspace accept the partner's cohorts (idempotent)."""
    conn.execute(
        store.insert_ignore(workspace_partners).values(
            workspace_id=workspace_id, partner_id=partner_id
        )
    )


# ---------------------------------------------------------------- data import keys


def insert_data_import_key(
    conn: sa.Connection, key: str, workspace_id: int, partner_id: int, sources: str | None = None
) -> None:
    conn.execute(
        sa.insert(data_import_keys).values(
            key=key,
            workspace_id=workspace_id,
            partner_id=partner_id,
            created_at=utc_now(),
            allowed_sources=sources,
        )
    )


def all_data_import_keys(conn: sa.Connection) -> list[Any]:
    """Every data import key row of the store (to find one by its fingerprint)."""
    return list(conn.execute(sa.select(data_import_keys)).all())


def set_data_import_key_sources(conn: sa.Connection, key: str, sources: str | None) -> None:
    conn.execute(
        sa.update(data_import_keys)
        .where(data_import_keys.c.key == key)
        .values(allowed_sources=sources)
    )


def data_import_key(conn: sa.Connection, key: str) -> Any:
    """The key's row, or None."""
    return conn.execute(sa.select(data_import_keys).where(data_import_keys.c.key == key)).first()


def data_import_keys_of(
    conn: sa.Connection, workspace_id: int, partner_id: int | None = None
) -> list[Any]:
    """The workspace's data import key rows (of ``partner_id`` when given), newest first."""
    query = sa.select(data_import_keys).where(data_import_keys.c.workspace_id == workspace_id)
    if partner_id is not None:
        query = query.where(data_import_keys.c.partner_id == partner_id)
    order = (data_import_keys.c.created_at.desc(), data_import_keys.c.key)
    return list(conn.execute(query.order_by(*order)).all())


def partners_of_workspace(conn: sa.Connection, workspace_id: int) -> list[Any]:
    """Every partner's ``id``, ``name``, ``display_name``, ``filter_name`` and whether the
    workspace ``enabled`` it, by display name."""
    enabled = (
        sa.select(sa.literal(1))
        .where(
            workspace_partners.c.workspace_id == workspace_id,
            workspace_partners.c.partner_id == partners.c.id,
        )
        .exists()
    )
    return list(
        conn.execute(
            sa.select(
                partners.c.id,
                partners.c.name,
                partners.c.display_name,
                partners.c.filter_name,
                enabled.label("enabled"),
            ).order_by(partners.c.display_name, partners.c.name)
        ).all()
    )


def invalidate_data_import_key(conn: sa.Connection, key: str, when: str) -> None:
    conn.execute(
        sa.update(data_import_keys).where(data_import_keys.c.key == key).values(invalidated_at=when)
    )


def _partner_check() -> sa.Select[Any]:
    """One query answering all three partner checks (built once, bound per call)."""
    key = (
        sa.select(
            data_import_keys.c.workspace_id,
            data_import_keys.c.partner_id,
            data_import_keys.c.allowed_sources,
        )
        .where(
            data_import_keys.c.key == sa.bindparam("client_secret"),
            data_import_keys.c.invalidated_at.is_(None),
        )
        .subquery()
    )
    enabled = (
        sa.select(sa.literal(1))
        .where(
            workspace_partners.c.workspace_id == key.c.workspace_id,
            workspace_partners.c.partner_id == partners.c.id,
        )
        .exists()
    )
    return (
        sa.select(
            partners.c.id.label("partner_id"),
            key.c.workspace_id,
            key.c.partner_id.label("key_partner_id"),
            key.c.allowed_sources,
            enabled.label("enabled"),
        )
        .join(partner_api_keys, partner_api_keys.c.partner_id == partners.c.id)
        .outerjoin(key, sa.true())
        .where(
            partners.c.name == sa.bindparam("partner"),
            partner_api_keys.c.key == sa.bindparam("partner_api_key"),
        )
    )


_PARTNER_CHECK = _partner_check()


def partner_credentials(
    conn: sa.Connection, partner: str, partner_api_key: str, client_secret: str
) -> Any:
    """What the store says of a partner call's keys, in one row (or None).

    Row absent: the partner API key is wrong. ``workspace_id`` NULL: no active
    data import key. ``key_partner_id`` differs from ``partner_id``: the key
    is another partner's. ``enabled`` false: the workspace has not enabled
    the partner. ``allowed_sources``: the key's stored source allowlist.
    """
    return conn.execute(
        _PARTNER_CHECK,
        {"partner": partner, "partner_api_key": partner_api_key, "client_secret": client_secret},
    ).first()
