"""``/users/track`` on the store: attributes, events and purchases of profiles.

Braze (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/)
takes up to 75 objects of each kind per request, each addressing one profile
by ``external_id``, ``user_alias``, ``braze_id``, ``email`` or ``phone``. An
object that cannot be applied (no such profile in update-only mode, an
increment of a text) is a non-fatal error of its own; the others apply.

A request is one write transaction with a fixed number of statements,
whatever its size: one lookup per identifier kind for all its objects, one
insert of the profiles it creates, one read of the profiles it changes, one
``executemany`` update of them, one insert of its events and one of its
purchases. That is what makes tens of thousands of updates a second.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.profiles.fields import COLUMN_FIELDS
from cohortsync.braze.store import Store, track_queries

Ref = tuple[str, Any]
"""How an object addresses its profile: ``("external_id", "u1")``, ``("user_alias",
(label, name))``, ``("braze_id", 12)``, ``("email", "a@x.io")`` or ``("phone", "+1...")``."""

CustomOp = tuple[str, str, Any]
"""``(attribute, operation, value)``: ``set``, ``unset``, ``inc``, ``add`` or ``remove``."""


@dataclass(slots=True)
class TrackObject:
    """One valid object of ``attributes``, ``events`` or ``purchases``.

    Not frozen, though nothing changes it: a request builds 75 of them, and a
    frozen dataclass's ``__init__`` costs about three times a plain one's.
    """

    array: str
    index: int
    ref: Ref
    update_existing_only: bool
    profile: dict[str, Any] = field(default_factory=dict)
    custom: tuple[CustomOp, ...] = ()
    row: dict[str, Any] = field(default_factory=dict)


def object_error(kind: str, array: str, index: int) -> dict[str, Any]:
    """A non-fatal error as Braze shapes it: ``{"type", "input_array", "index"}``."""
    return {"type": kind, "input_array": array, "index": index}


class _Refused(Exception):
    """One object cannot be applied to its profile (the message is the error's type)."""


def track(store: Store, workspace_id: int, objects: list[TrackObject]) -> list[dict[str, Any]]:
    """Apply the objects, in order, in one transaction; the non-fatal errors.

    On SQLite concurrent requests share a commit (:meth:`Store.write_grouped`),
    each in its own savepoint: the commit, not the statements, is the cost.
    """

    def work(conn: sa.Connection) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        loaded: dict[int, Any] = {}
        found = _resolve(conn, workspace_id, {item.ref for item in objects}, loaded)
        applied = _create_missing(conn, workspace_id, objects, found, errors)
        attributes = [(found[i.ref], i) for i in applied if i.array == "attributes"]
        _apply_attributes(conn, attributes, errors, loaded)
        for array, insert in (
            ("events", track_queries.insert_events),
            ("purchases", track_queries.insert_purchases),
        ):
            rows = [{**i.row, "user_id": found[i.ref]} for i in applied if i.array == array]
            if rows:
                insert(conn, rows)
        return errors

    return store.write_grouped(work)


def _resolve(
    conn: sa.Connection, workspace_id: int, refs: set[Ref], loaded: dict[int, Any]
) -> dict[Ref, int]:
    """The profile of each reference that has one: one query per identifier kind.

    External ids, the usual way to address profiles, are looked up with the
    columns attributes change (locked until the commit), kept in ``loaded``
    so that they are not read twice.
    """
    wanted: dict[str, set[Any]] = defaultdict(set)
    for kind, value in refs:
        wanted[kind].add(value)
    found: dict[Ref, int] = {}
    for kind, values in wanted.items():
        if kind == "external_id":
            rows = track_queries.profiles_by_external_id(conn, workspace_id, values)
            for row in rows:
                user_id = int(row.id)
                found[(kind, row.external_id)] = user_id
                loaded[user_id] = row
            continue
        for value, user_id in track_queries.owners(conn, workspace_id, kind, values).items():
            found[(kind, value)] = user_id
    return found


def _create_missing(
    conn: sa.Connection,
    workspace_id: int,
    objects: list[TrackObject],
    found: dict[Ref, int],
    errors: list[dict[str, Any]],
) -> list[TrackObject]:
    """Create the profiles objects may create (one insert); the objects that apply."""
    applied: list[TrackObject] = []
    creating: list[Ref] = []
    for item in objects:
        if item.ref in found or item.ref in creating:
            applied.append(item)
        elif item.update_existing_only:
            errors.append(object_error(_no_profile(item), item.array, item.index))
        else:
            creating.append(item.ref)
            applied.append(item)
    found.update(track_queries.create_profiles(conn, workspace_id, creating))
    return applied


def _no_profile(item: TrackObject) -> str:
    kind = item.ref[0]
    if kind == "braze_id":
        return "no profile has this braze_id (braze_id never creates a profile)"
    return f"no profile has this {kind} and _update_existing_only is true"


def _apply_attributes(
    conn: sa.Connection,
    items: list[tuple[int, TrackObject]],
    errors: list[dict[str, Any]],
    loaded: dict[int, Any],
) -> None:
    """Read the changed profiles once (those not ``loaded`` already), apply every
    object in order, write them once."""
    if not items:
        return
    wanted = {user_id for user_id, _ in items}
    rows = {user_id: loaded[user_id] for user_id in wanted if user_id in loaded}
    missing = sorted(wanted - set(rows))
    if missing:
        rows.update(track_queries.profiles_for_update(conn, missing))
    states = {}
    for user_id, row in rows.items():
        custom, standard = row.attributes, row.standard
        states[user_id] = _State(
            orjson.loads(custom) if custom else {}, orjson.loads(standard) if standard else {}
        )
    for user_id, item in items:
        state = states[user_id]
        try:
            custom = _applied_custom(dict(state.custom), item.custom)
        except _Refused as refused:
            errors.append(object_error(str(refused), item.array, item.index))
            continue
        state.custom = custom
        for name, value in item.profile.items():
            if name in COLUMN_FIELDS:
                state.columns[name] = value
            elif value is None:
                state.standard.pop(name, None)
            else:
                state.standard[name] = value
    track_queries.write_profiles(conn, _changes(rows, states))


def _changes(rows: dict[int, Any], states: dict[int, _State]) -> list[dict[str, Any]]:
    """``{"uid", column: value}`` of the columns each profile changed, no others.

    An UPDATE that sets an indexed column (email, phone) rewrites its index
    entries even to the same value, so unchanged columns are left out.
    """
    changes = []
    for user_id, row in rows.items():
        state = states[user_id]
        changed: dict[str, Any] = {"uid": user_id}
        custom, standard = _json(state.custom), _json(state.standard)
        if custom != row.attributes:
            changed["attributes"] = custom
        if standard != row.standard:
            changed["standard"] = standard
        for name, value in state.columns.items():
            if value != getattr(row, name):
                changed[name] = value
        if len(changed) > 1:
            changes.append(changed)
    return changes


@dataclass
class _State:
    custom: dict[str, Any]
    standard: dict[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)
    """The column fields (email, phone) the profile's objects set."""


def _json(value: dict[str, Any]) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _applied_custom(custom: dict[str, Any], ops: tuple[CustomOp, ...]) -> dict[str, Any]:
    """The custom attributes after the object's operations (Braze's semantics).

    - a value sets the attribute (objects too: nested custom attributes);
    - ``null`` removes it;
    - ``{"inc": n}`` adds ``n`` to a number (a missing attribute counts as 0);
    - ``{"add": [...]}`` appends each value to an array, moving one already
      present to the end (Braze's arrays are sets); ``{"remove": [...]}``
      removes every occurrence of each value.
    """
    for name, op, value in ops:
        current = custom.get(name)
        if op == "set":
            custom[name] = value
        elif op == "unset":
            custom.pop(name, None)
        elif op == "inc":
            if current is None:
                current = 0
            if not _is_number(current):
                raise _Refused(f"{name} is not a number, so it cannot be incremented")
            custom[name] = current + value
        else:
            if current is None:
                current = []
            if not isinstance(current, list):
                raise _Refused(f"{name} is not an array, so values cannot be added or removed")
            kept = [v for v in current if v not in value]
            if op == "add":
                for item in value:
                    if item not in kept:
                        kept.append(item)
            custom[name] = kept
    return custom


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
