"""Administration of the receiving service, as plain functions over a store.

The ``cohortsync braze`` commands, the tests and the demo all go through
these, so what an administrator can do is written once. Every function takes
an open :class:`~cohortsync.braze.store.Store` (see :func:`open_store`) and
returns JSON-ready values; a mistake of the caller (an unknown workspace, a
cohort that does not exist) raises :class:`~cohortsync.errors.ConfigError`.

A workspace is named either by its id or by its name.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze import segments
from cohortsync.braze.keys import key_fingerprint, new_key
from cohortsync.braze.profiles import bulk_load
from cohortsync.braze.profiles.listings import describe_users
from cohortsync.braze.sources import decode_sources, encode_sources, parse_sources
from cohortsync.braze.store import (
    IDENTIFIER_KINDS,
    Store,
    account_queries,
    cohort_queries,
    open_store,
    segment_queries,
    user_queries,
    utc_now,
)
from cohortsync.errors import ConfigError

__all__ = [
    "cohort_choices",
    "cohort_members",
    "create_partner",
    "create_segment",
    "create_workspace",
    "delete_segment",
    "describe_cohort",
    "enable_partner",
    "generate_key",
    "invalidate_key",
    "invalidate_key_by_fingerprint",
    "list_cohorts",
    "list_keys",
    "list_partners",
    "list_segments",
    "list_workspace_keys",
    "load_users",
    "load_users_file",
    "lock_cohort",
    "open_store",
    "resolve_cohort",
    "resolve_workspace",
    "segment_details",
    "segment_member_page",
    "segment_members",
    "segment_size",
    "set_key_sources",
    "unlock_cohort",
    "update_segment",
    "user_segments",
    "workspace_partner",
]

DEFAULT_PARTNER = "treasuredata"
PARTNER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
WorkspaceRef = int | str


def resolve_workspace(conn: sa.Connection, workspace: WorkspaceRef) -> int:
    """The id of the workspace named (or numbered) ``workspace``; ConfigError when none."""
    text = str(workspace)
    found = account_queries.workspace_id_of(conn, text)
    if found is None:
        raise ConfigError(
            f"no workspace {text!r} in this store",
            hint="create it with 'cohortsync braze workspace create NAME', or check --db",
        )
    return found


def _partner_id(conn: sa.Connection, name: str) -> int:
    found = account_queries.partner_named(conn, name)
    if found is None:
        raise ConfigError(
            f"no partner {name!r} in this store",
            hint=f"create it with 'cohortsync braze partner create {name} --api-key KEY'",
        )
    return int(found.id)


def resolve_cohort(conn: sa.Connection, workspace_id: int, cohort_id: str) -> Any:
    """The row of the workspace's cohort ``cohort_id``; ConfigError when it has none.

    Only that workspace is searched: a cohort id of another workspace is unknown here.
    """
    row = cohort_queries.cohort_row(conn, workspace_id, cohort_id)
    if row is None:
        raise ConfigError(
            f"no cohort {cohort_id!r} in workspace {workspace_id}",
            hint="see 'cohortsync braze cohorts list'; a cohort exists once a partner sent it",
        )
    return row


# ---------------------------------------------------------------- workspaces and partners


def _allowlist(allow: Iterable[str] | None) -> list[str] | None:
    """The allowlist of ``--allow`` values in normal form; None (any source) when none."""
    networks = parse_sources(allow or ())
    return networks or None


def create_workspace(
    store: Store, name: str, *, allow: Iterable[str] | None = None
) -> dict[str, Any]:
    """A new workspace and its REST API key, restricted to the sources ``allow`` names.

    Returns ``{"id", "name", "rest_api_key", "allowed_sources"}``
    (``allowed_sources`` None: any source).
    """
    if not name.strip():
        raise ConfigError("a workspace name must not be empty", hint="pass a NAME")
    sources = _allowlist(allow)
    key = new_key()
    with store.write() as conn:
        exists = account_queries.workspace_named(conn, name)
        if exists is not None:
            raise ConfigError(
                f"workspace {name!r} exists already (id {exists})", hint="pick another name"
            )
        workspace_id = account_queries.insert_workspace(conn, name, key, encode_sources(sources))
    return {"id": workspace_id, "name": name, "rest_api_key": key, "allowed_sources": sources}


def rotate_rest_api_key(store: Store, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """Replace a workspace's REST API key with a new one; the old one is refused at once.

    The key's source allowlist stays. Returns ``{"id", "name", "rest_api_key"}``.
    """
    key = new_key()
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        name = account_queries.replace_rest_api_key(conn, workspace_id, key)
    return {"id": workspace_id, "name": name, "rest_api_key": key}


def create_partner(
    store: Store,
    name: str,
    *,
    api_key: str,
    display_name: str | None = None,
    filter_name: str | None = None,
    region: str = "us",
) -> dict[str, Any]:
    """Create a technology partner, or add a partner API key when it exists.

    ``display_name`` and ``filter_name`` default to the name and to
    "<display name> Cohorts"; given for an existing partner, they rename it.
    """
    if not PARTNER_NAME.match(name):
        raise ConfigError(
            f"partner name {name!r} cannot appear in a URL path",
            hint="use lower-case letters, digits, '-' and '_', e.g. treasuredata",
        )
    if not api_key.strip():
        raise ConfigError("the partner API key must not be empty", hint="pass --api-key KEY")
    with store.write() as conn:
        row = account_queries.partner_named(conn, name)
        if row is None:
            display = display_name or name
            partner_id = account_queries.insert_partner(
                conn, name, display, filter_name or f"{display} Cohorts"
            )
        else:
            partner_id = row.id
            changes = {}
            if display_name:
                changes["display_name"] = display_name
            if filter_name or display_name:
                changes["filter_name"] = filter_name or f"{display_name} Cohorts"
            if changes:
                account_queries.rename_partner(conn, partner_id, changes)
        holder = account_queries.partner_of_api_key(conn, api_key)
        if holder is None:
            account_queries.insert_partner_api_key(conn, api_key, partner_id, region)
        elif holder != partner_id:
            raise ConfigError(
                "this partner API key belongs to another partner", hint="issue a different key"
            )
        return account_queries.describe_partner(conn, partner_id)


def remove_partner_api_key(store: Store, name: str, *, api_key: str) -> dict[str, Any]:
    """Stop accepting one of a partner's API keys; its other keys keep working.

    Returns the partner as :func:`create_partner` does, without the key.
    """
    with store.write() as conn:
        partner_id = _partner_id(conn, name)
        if not account_queries.delete_partner_api_key(conn, api_key, partner_id):
            raise ConfigError(
                f"partner {name!r} has no such partner API key",
                hint=f"give one of the keys 'cohortsync braze partner create {name} --api-key KEY' "
                "added",
            )
        return account_queries.describe_partner(conn, partner_id)


def enable_partner(store: Store, name: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """Let a workspace accept cohorts from a partner (idempotent)."""
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = _partner_id(conn, name)
        account_queries.enable_partner(store, conn, workspace_id, partner_id)
    return {"workspace": workspace_id, "partner": name, "enabled": True}


# ---------------------------------------------------------------- data import keys


def generate_key(
    store: Store,
    *,
    workspace: WorkspaceRef,
    partner: str = DEFAULT_PARTNER,
    allow: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A new data import key of (workspace, partner); earlier keys stay valid.

    ``allow``: the addresses and CIDR ranges it may be sent from (none: any).
    """
    sources = _allowlist(allow)
    key = new_key()
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = _partner_id(conn, partner)
        account_queries.insert_data_import_key(
            conn, key, workspace_id, partner_id, encode_sources(sources)
        )
    return {
        "data_import_key": key,
        "workspace": workspace_id,
        "partner": partner,
        "allowed_sources": sources,
    }


def invalidate_key(store: Store, key: str) -> dict[str, Any]:
    """Refuse a data import key from now on (the next request gets 401)."""
    with store.write() as conn:
        row = account_queries.data_import_key(conn, key)
        if row is None:
            raise ConfigError(
                "no such data import key in this store", hint="check the key and --db"
            )
        when = row.invalidated_at or utc_now()
        account_queries.invalidate_data_import_key(conn, key, when)
    return {"data_import_key": key, "invalidated_at": when}


def _describe_key(row: Any) -> dict[str, Any]:
    """A data import key as the dashboard may show it: never the key itself."""
    return {
        "fingerprint": key_fingerprint(row.key),
        "created_at": row.created_at,
        "invalidated_at": row.invalidated_at,
        "active": row.invalidated_at is None,
        "allowed_sources": decode_sources(row.allowed_sources),
    }


def list_keys(
    store: Store, *, workspace: WorkspaceRef, partner: str = DEFAULT_PARTNER
) -> list[dict[str, Any]]:
    """The workspace's data import keys for ``partner``, newest first.

    Each is ``{"fingerprint", "created_at", "invalidated_at", "active",
    "allowed_sources"}`` (``allowed_sources`` None: any source): the key
    itself is shown once, by :func:`generate_key`, and never listed.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = _partner_id(conn, partner)
        rows = account_queries.data_import_keys_of(conn, workspace_id, partner_id)
    return [_describe_key(row) for row in rows]


def invalidate_key_by_fingerprint(
    store: Store, fingerprint: str, *, workspace: WorkspaceRef, partner: str | None = None
) -> dict[str, Any]:
    """Refuse from now on the workspace's data import key with this fingerprint.

    Only the workspace's own keys (and ``partner``'s, when given) are
    searched: a fingerprint of another workspace's key is unknown here.
    Invalidating an invalidated key keeps its first date. Returns the key as
    :func:`list_keys` shows it.
    """
    wanted = fingerprint.strip().lower()
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = None if partner is None else _partner_id(conn, partner)
        rows = [
            row
            for row in account_queries.data_import_keys_of(conn, workspace_id, partner_id)
            if key_fingerprint(row.key) == wanted
        ]
        if len(rows) != 1:
            raise ConfigError(
                f"no data import key with fingerprint {fingerprint!r} in workspace {workspace_id}"
                if not rows
                else f"several data import keys share the fingerprint {fingerprint!r}",
                hint="pick the fingerprint from the partner's list of keys",
            )
        [row] = rows
        when = row.invalidated_at or utc_now()
        account_queries.invalidate_data_import_key(conn, row.key, when)
    return {**_describe_key(row), "invalidated_at": when, "active": False}


def list_workspace_keys(
    store: Store, *, workspace: WorkspaceRef, partner: str | None = None
) -> list[dict[str, Any]]:
    """The workspace's REST API key, then its data import keys (``partner``'s only, if given).

    Each is ``{"type", "fingerprint", "partner", "created_at", "invalidated_at",
    "active", "allowed_sources"}``; ``type`` is ``rest_api_key`` or
    ``data_import_key``; keys are named by fingerprint, never shown.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = None if partner is None else _partner_id(conn, partner)
        names = {
            row.id: row.name for row in account_queries.partners_of_workspace(conn, workspace_id)
        }
        rest = account_queries.workspace_row(conn, workspace_id)
        rows = account_queries.data_import_keys_of(conn, workspace_id, partner_id)
    listed: list[dict[str, Any]] = []
    if partner is None:
        listed.append(
            {
                "type": "rest_api_key",
                "fingerprint": key_fingerprint(rest.rest_api_key),
                "partner": None,
                "created_at": rest.created_at,
                "invalidated_at": None,
                "active": True,
                "allowed_sources": decode_sources(rest.rest_api_key_sources),
            }
        )
    for row in rows:
        listed.append(
            {"type": "data_import_key", **_describe_key(row), "partner": names[row.partner_id]}
        )
    return listed


def set_key_sources(store: Store, key: str, allow: Iterable[str] | None) -> dict[str, Any]:
    """Restrict a key to the sources ``allow`` names, or (None) let any source send it.

    ``key`` is a data import key, a workspace's REST API key, or the
    fingerprint of either as :func:`list_workspace_keys` shows it. The next
    request is checked against the new allowlist. Returns the key as
    :func:`list_workspace_keys` shows it, with its ``workspace``.
    """
    sources = None if allow is None else _allowlist(allow)
    if allow is not None and sources is None:
        raise ConfigError("no source to allow", hint="pass --allow ADDRESS|CIDR, or --clear")
    wanted = key.strip()
    with store.write() as conn:
        keys = [
            ("data_import_key", row.key, row) for row in account_queries.all_data_import_keys(conn)
        ] + [
            ("rest_api_key", row.rest_api_key, row)
            for row in account_queries.all_rest_api_keys(conn)
        ]
        found = [item for item in keys if item[1] == wanted]
        if not found:
            found = [item for item in keys if key_fingerprint(item[1]) == wanted.lower()]
        if len(found) != 1:
            raise ConfigError(
                "no such data import key or REST API key in this store"
                if not found
                else f"several keys share the fingerprint {wanted!r}",
                hint="pass the key itself, or its fingerprint from "
                "'cohortsync braze key list -w WORKSPACE'; check --db",
            )
        [(kind, value, row)] = found
        stored = encode_sources(sources)
        if kind == "rest_api_key":
            account_queries.set_rest_key_sources(conn, int(row.id), stored)
            workspace_id = int(row.id)
        else:
            account_queries.set_data_import_key_sources(conn, value, stored)
            workspace_id = int(row.workspace_id)
    return {
        "type": kind,
        "fingerprint": key_fingerprint(value),
        "workspace": workspace_id,
        "allowed_sources": sources,
    }


# ---------------------------------------------------------------- partners of a workspace


def list_partners(store: Store, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    """Every technology partner, enabled in the workspace or not, by display name.

    Each is ``{"name", "display_name", "filter_name", "enabled"}``; the
    partners' own API keys are theirs and never listed here.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        rows = account_queries.partners_of_workspace(conn, workspace_id)
    return [_describe_partner(row) for row in rows]


def _describe_partner(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "filter_name": row.filter_name,
        "enabled": bool(row.enabled),
    }


def workspace_partner(store: Store, name: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """One partner as :func:`list_partners` shows it, with the workspace's ``keys``."""
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        partner_id = _partner_id(conn, name)
        partners = account_queries.partners_of_workspace(conn, workspace_id)
        keys = account_queries.data_import_keys_of(conn, workspace_id, partner_id)
    [row] = [partner_row for partner_row in partners if partner_row.id == partner_id]
    return {**_describe_partner(row), "keys": [_describe_key(key) for key in keys]}


# ---------------------------------------------------------------- users


def load_users(store: Store, *, workspace: WorkspaceRef, rows: Iterable[Any]) -> dict[str, Any]:
    """Load users from dicts of the NDJSON line shape; see :func:`bulk_load.load_users`."""
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
    return bulk_load.load_users(store, workspace_id, rows).as_dict()


def load_users_file(
    store: Store,
    *,
    workspace: WorkspaceRef,
    lines: Iterable[bytes | str],
    source: str,
    continue_on_error: bool = False,
) -> bulk_load.LoadReport:
    """Load an NDJSON file (``source`` names it in messages); see :func:`bulk_load.load_numbered`.

    All or nothing by default; with ``continue_on_error`` the good lines are
    loaded and the report names the refused ones, bad JSON included.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
    return bulk_load.load_numbered(
        store,
        workspace_id,
        numbered_ndjson(lines),
        source=source,
        continue_on_error=continue_on_error,
    )


def numbered_ndjson(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line; a :class:`bulk_load.BadLine` for bad JSON.

    It never raises on a bad line, so that a load can either refuse it
    (naming the file's own line number, blank lines counted) or skip it and
    go on.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield number, bulk_load.BadLine(number, f"not valid JSON ({error})")


# ---------------------------------------------------------------- cohorts


def list_cohorts(store: Store, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    """Every cohort with its size and its identifiers received / matched / dropped.

    The counts are the "match rate" Braze does not show: they explain why a
    cohort holds fewer users than the query that fed it returned.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        rows = cohort_queries.cohorts_with_sizes(conn, workspace_id)
    return [describe_cohort(row, size) for row, size in rows]


def describe_cohort(row: Any, size: int) -> dict[str, Any]:
    """A row of :func:`cohort_queries.cohorts_with_sizes` as :func:`list_cohorts` lists it."""
    identifiers = {
        kind: {
            "received": int(row._mapping[f"{kind}_received"]),
            "matched": int(row._mapping[f"{kind}_matched"]),
            "dropped": int(row._mapping[f"{kind}_received"] - row._mapping[f"{kind}_matched"]),
        }
        for kind in IDENTIFIER_KINDS
    }
    received = sum(c["received"] for c in identifiers.values())
    matched = sum(c["matched"] for c in identifiers.values())
    return {
        "cohort_id": row.cohort_id,
        "name": row.name,
        "partner": row.partner,
        "partner_display_name": row.partner_display_name,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "locked": bool(row.locked),
        "size": size,
        "identifiers": identifiers,
        "match_rate": round(matched / received, 4) if received else None,
    }


def cohort_members(
    store: Store, cohort_id: str, *, workspace: WorkspaceRef
) -> list[dict[str, Any]]:
    """The cohort's users as a sorted list of ``{"external_id", "aliases", "device_ids"}``."""
    with store.read() as conn:
        row = resolve_cohort(conn, resolve_workspace(conn, workspace), cohort_id)
        return describe_users(conn, cohort_queries.member_ids(row.id))


def _set_lock(
    store: Store, cohort_id: str, workspace: WorkspaceRef, locked: bool
) -> dict[str, Any]:
    with store.write() as conn:
        row = resolve_cohort(conn, resolve_workspace(conn, workspace), cohort_id)
        cohort_queries.set_locked(conn, row.id, locked)
    return {"cohort_id": cohort_id, "locked": locked}


def lock_cohort(store: Store, cohort_id: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """Make partner calls on the cohort answer 423 until :func:`unlock_cohort`."""
    return _set_lock(store, cohort_id, workspace, True)


def unlock_cohort(store: Store, cohort_id: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    return _set_lock(store, cohort_id, workspace, False)


# ---------------------------------------------------------------- segments


def create_segment(
    store: Store,
    name: str,
    *,
    workspace: WorkspaceRef,
    includes_cohorts: Iterable[str] = (),
    excludes_cohorts: Iterable[str] = (),
    external_id: bool | None = None,
    match: str = "all",
    filter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A segment from cohort includes / excludes and external id presence.

    The conditions combine with AND (``match="all"``) or OR (``"any"``);
    ``filter`` passes a whole tree instead (see :mod:`.segments`).
    """
    if match not in ("all", "any"):
        raise ConfigError(f"unknown match {match!r}", hint="use 'all' (AND) or 'any' (OR)")
    if filter is None:
        parts = [segments.cohort_filter(c, includes=True) for c in includes_cohorts]
        parts += [segments.cohort_filter(c, includes=False) for c in excludes_cohorts]
        if external_id is not None:
            parts.append(segments.external_id_filter(present=external_id))
        if not parts:
            raise ConfigError(
                f"segment {name!r} has no filter", hint="pass --includes-cohort ID at least"
            )
        filter = segments.combine("and" if match == "all" else "or", parts)
    now = utc_now()
    segment_id = str(uuid.uuid4())
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        segments.validate_filter(conn, workspace_id, filter)
        if segment_queries.segment_named(conn, workspace_id, name) is not None:
            raise ConfigError(f"segment {name!r} exists already", hint="pick another name")
        segment_queries.insert_segment(
            conn,
            segment_id=segment_id,
            workspace_id=workspace_id,
            name=name,
            filter_json=orjson.dumps(filter).decode(),
            now=now,
        )
        description = segments.describe_filter(conn, workspace_id, filter)
    return {"id": segment_id, "name": name, "filter": filter, "text_description": description}


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("a segment name must not be empty", hint="pass a NAME")
    return name


def update_segment(
    store: Store,
    segment: str,
    *,
    workspace: WorkspaceRef,
    name: str | None = None,
    filter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rename a segment (by name or id) and / or replace its filter tree.

    The new tree is checked as on creation; what is not given stays.
    """
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        row = _segment(conn, workspace_id, segment)
        new_name = row.name if name is None else _checked_name(name)
        tree = orjson.loads(row.filter) if filter is None else filter
        segments.validate_filter(conn, workspace_id, tree)
        holder = segment_queries.segment_named(conn, workspace_id, new_name)
        if holder is not None and holder != row.id:
            raise ConfigError(f"segment {new_name!r} exists already", hint="pick another name")
        segment_queries.update_segment(
            conn, row.id, name=new_name, filter_json=orjson.dumps(tree).decode(), now=utc_now()
        )
        description = segments.describe_filter(conn, workspace_id, tree)
    return {"id": row.id, "name": new_name, "filter": tree, "text_description": description}


def delete_segment(store: Store, segment: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """Delete a segment (by name or id) that no campaign or Canvas targets.

    A campaign keeps segment ids in its audience and steps; deleting one of
    them would silently change who it sends to, so that is refused.
    """
    with store.write() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        row = _segment(conn, workspace_id, segment)
        users_of_it = segment_queries.campaigns_targeting(conn, workspace_id, row.id)
        if users_of_it:
            raise ConfigError(
                f"segment {row.name!r} is the audience of {', '.join(users_of_it)}",
                hint="remove it from those campaigns and Canvases first",
            )
        segment_queries.delete_segment(conn, row.id)
    return {"id": row.id, "name": row.name, "deleted": True}


def segment_size(store: Store, workspace: WorkspaceRef, tree: Any) -> int:
    """How many users a filter tree keeps now (the builder's reachable users count).

    The tree is checked first, so a half-built filter gets the same
    :class:`ConfigError` as saving it would.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        segments.validate_filter(conn, workspace_id, tree)
        return segment_queries.members_count(conn, workspace_id, tree)


def segment_details(store: Store, segment: str, *, workspace: WorkspaceRef) -> dict[str, Any]:
    """A segment (by name or id): id, name, filter, text_description, size, created / updated."""
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        row = _segment(conn, workspace_id, segment)
        tree = orjson.loads(row.filter)
        return {
            "id": row.id,
            "name": row.name,
            "filter": tree,
            "text_description": segments.describe_filter(conn, workspace_id, tree),
            "size": segment_queries.members_count(conn, workspace_id, tree),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }


def segment_member_page(
    store: Store, segment: str, *, workspace: WorkspaceRef, offset: int = 0, limit: int = 50
) -> dict[str, Any]:
    """One page of a segment's members in user id order: ``{"total", "offset", "members"}``.

    Each member is ``{"braze_id", "external_id", "aliases", "device_ids"}``.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        tree = orjson.loads(_segment(conn, workspace_id, segment).filter)
        total = segment_queries.members_count(conn, workspace_id, tree)
        offset = max(0, min(offset, max(total - 1, 0)))
        ids = segment_queries.member_page(
            conn, workspace_id, tree, offset=offset, limit=max(1, limit)
        )
        described = user_queries.members_by_id(conn, user_queries.users_with_ids(ids))
    members = [{"braze_id": user_id, **described[user_id]} for user_id in ids]
    return {"total": total, "offset": offset, "members": members}


def user_segments(store: Store, user_id: int, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    """``{"id", "name"}`` of each segment of the workspace that holds the user, by name.

    A user of another workspace is in none of them.
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        return segment_queries.segments_of_user(conn, workspace_id, user_id)


def cohort_choices(store: Store, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    """The cohorts a segment filter may name, as the builder lists them, by partner then name.

    Each is ``{"cohort_id", "name", "partner", "partner_display_name", "filter_name"}``;
    ``filter_name`` is the filter's title, e.g. "Treasure Data Cohorts".
    """
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        return [dict(row._mapping) for row in segment_queries.cohort_choices(conn, workspace_id)]


def _segment(conn: sa.Connection, workspace_id: int, name: str) -> Any:
    row = segment_queries.segment_row(conn, workspace_id, name, or_name=True)
    if row is None:
        raise ConfigError(
            f"no segment {name!r} in workspace {workspace_id}",
            hint="create it with 'cohortsync braze segment create'",
        )
    return row


def segment_members(store: Store, name: str, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    """The segment's users (by name or id), in the shape of :func:`cohort_members`."""
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        row = _segment(conn, workspace_id, name)
        query = segment_queries.members_query(workspace_id, orjson.loads(row.filter))
        return describe_users(conn, query)


def list_segments(store: Store, *, workspace: WorkspaceRef) -> list[dict[str, Any]]:
    with store.read() as conn:
        workspace_id = resolve_workspace(conn, workspace)
        rows = segment_queries.segment_rows(conn, workspace_id, order="name")
        return [
            {
                "id": row.id,
                "name": row.name,
                "filter": orjson.loads(row.filter),
                "text_description": segments.describe_filter(
                    conn, workspace_id, orjson.loads(row.filter)
                ),
            }
            for row in rows
        ]
