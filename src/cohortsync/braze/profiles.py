"""User profiles: bulk load, Braze's /users/* operations and member listings.

These are the only places that create users. Cohort import never does (see
:mod:`.matching`); a sandbox is filled with :func:`load_users` (a million
users a minute, by chunks of plain ``executemany``) or with the REST calls a
Braze user would make: track, alias, identify.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.store import (
    MAX_IDENTIFIER_LENGTH,
    Store,
    allocate_ids,
    cohort_members,
    cohorts,
    user_aliases,
    user_devices,
    users,
    utc_now,
)
from cohortsync.braze.validation import Alias, is_identifier, parse_alias
from cohortsync.errors import CohortsyncError, ConfigError, RunInterrupted, whole_message

LOAD_CHUNK = 20_000
FAILURES_LISTED = 20
"""How many failed lines a ``--continue-on-error`` report names (all are counted)."""
LOOKUP_CHUNK = 5_000
LOAD_LINE_SHAPE = (
    '{"external_id": "u1", "aliases": [{"alias_label": "email", "alias_name": "a@x.io"}], '
    '"device_ids": ["d1"]}'
)


# ---------------------------------------------------------------- member listings


def describe_users(conn: sa.Connection, user_ids: sa.Select[Any]) -> list[dict[str, Any]]:
    """``{"external_id", "aliases", "device_ids"}`` for the users a query selects, sorted.

    Users sort by external id (anonymous users last), then aliases, then
    device ids, so two listings of the same members compare equal.
    """
    return sorted(describe_users_by_id(conn, user_ids).values(), key=member_sort_key)


def describe_users_by_id(
    conn: sa.Connection, user_ids: sa.Select[Any]
) -> dict[int, dict[str, Any]]:
    """The member shape of each selected user, keyed by user id."""
    members: dict[int, dict[str, Any]] = {
        row.id: {"external_id": row.external_id, "aliases": [], "device_ids": []}
        for row in conn.execute(
            sa.select(users.c.id, users.c.external_id).where(users.c.id.in_(user_ids))
        )
    }
    for user_id, label, name in conn.execute(
        sa.select(user_aliases.c.user_id, user_aliases.c.alias_label, user_aliases.c.alias_name)
        .where(user_aliases.c.user_id.in_(user_ids))
        .order_by(user_aliases.c.alias_label, user_aliases.c.alias_name)
    ):
        members[user_id]["aliases"].append({"alias_label": label, "alias_name": name})
    for user_id, device_id in conn.execute(
        sa.select(user_devices.c.user_id, user_devices.c.device_id)
        .where(user_devices.c.user_id.in_(user_ids))
        .order_by(user_devices.c.device_id)
    ):
        members[user_id]["device_ids"].append(device_id)
    return members


def member_sort_key(member: dict[str, Any]) -> tuple[Any, ...]:
    external_id = member["external_id"]
    aliases = [(a["alias_label"], a["alias_name"]) for a in member["aliases"]]
    return (external_id is None, external_id or "", aliases, member["device_ids"])


# ---------------------------------------------------------------- bulk load


@dataclass(frozen=True)
class ProfileLine:
    """One user of a load file."""

    external_id: str | None
    aliases: tuple[Alias, ...]
    device_ids: tuple[str, ...]


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON object of the load shape, and why."""

    line: int
    reason: str


@dataclass
class LoadReport:
    """What a load did: ``users_updated`` counts lines that extended a user
    who existed already or whom an earlier line of the same load created.

    ``lines`` counts the lines loaded; ``failed`` the lines refused (only a
    ``continue_on_error`` load gets past one), of which ``failures`` names
    the first :data:`FAILURES_LISTED`.
    """

    lines: int = 0
    users_created: int = 0
    users_updated: int = 0
    lines_without_identifiers: int = 0
    failed: int = 0
    failures: list[BadLine] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "lines": self.lines,
            "users_created": self.users_created,
            "users_updated": self.users_updated,
            "lines_without_identifiers": self.lines_without_identifiers,
        }
        if self.failed:
            data["lines_failed"] = self.failed
            data["failures"] = [{"line": f.line, "reason": f.reason} for f in self.failures]
        return data

    def fail(self, bad: BadLine) -> None:
        self.failed += 1
        if len(self.failures) < FAILURES_LISTED:
            self.failures.append(bad)


class LoadFailed(ConfigError):
    """A line of an all-or-nothing load was refused: the transaction was rolled back."""

    def __init__(self, source: str, bad: BadLine) -> None:
        super().__init__(
            f"{source} line {bad.line}: {bad.reason}; nothing was loaded",
            hint=(
                f"fix the line (each is one JSON object like {LOAD_LINE_SHAPE}), or pass "
                "--continue-on-error to load the good lines"
            ),
        )
        self.bad = bad


def parse_profile_line(value: Any, line: int) -> ProfileLine:
    """Check one load line; the error names the line and the expected shape."""
    parsed = check_profile_line(value, line)
    if isinstance(parsed, BadLine):
        raise ConfigError(
            f"line {line}: {parsed.reason}",
            hint=f"each line is one JSON object like {LOAD_LINE_SHAPE}; every field is optional",
        )
    return parsed


def check_profile_line(value: Any, line: int) -> ProfileLine | BadLine:
    """One load line as a profile, or the reason it is not one (never raises)."""
    if isinstance(value, BadLine):
        return value
    try:
        return _profile_line(value)
    except _Refused as refused:
        return BadLine(line, str(refused))


class _Refused(Exception):
    pass


def _profile_line(value: Any) -> ProfileLine:
    def bad(detail: str) -> _Refused:
        return _Refused(detail)

    if not isinstance(value, dict):
        raise bad("not a JSON object")
    external_id = value.get("external_id")
    if external_id is not None and (not is_identifier(external_id) or not external_id):
        raise bad(
            f"external_id is not a non-empty string of at most {MAX_IDENTIFIER_LENGTH} "
            "characters without NUL"
        )
    raw_aliases = value.get("aliases") or []
    raw_devices = value.get("device_ids") or []
    if not isinstance(raw_aliases, list):
        raise bad("aliases is not an array")
    aliases = []
    for item in raw_aliases:
        alias = parse_alias(item)
        if alias is None:
            raise bad("an alias lacks string alias_label and alias_name")
        aliases.append(alias)
    if not isinstance(raw_devices, list) or not all(is_identifier(d) and d for d in raw_devices):
        raise bad(
            f"device_ids is not an array of non-empty strings of at most "
            f"{MAX_IDENTIFIER_LENGTH} characters without NUL"
        )
    return ProfileLine(external_id, tuple(aliases), tuple(raw_devices))


def load_users(
    store: Store, workspace_id: int, rows: Iterable[Any], *, chunk_size: int = LOAD_CHUNK
) -> LoadReport:
    """Create or extend users from dicts of the NDJSON line shape, all or nothing.

    Lines are numbered from 1 in ``rows``' order; see :func:`load_numbered`.
    """
    return load_numbered(store, workspace_id, enumerate(rows, start=1), chunk_size=chunk_size)


def load_numbered(
    store: Store,
    workspace_id: int,
    rows: Iterable[tuple[int, Any]],
    *,
    source: str = "the input",
    continue_on_error: bool = False,
    chunk_size: int = LOAD_CHUNK,
) -> LoadReport:
    """Create or extend users from ``(line number, value)`` pairs of the NDJSON line shape.

    A line with an external id extends that user when it exists; a line
    without one extends the anonymous user that already holds one of its
    aliases or device ids, else creates one; a line with no identifier at
    all is skipped (and counted), as nothing could ever match that user. An
    alias or device id already held by another user stays with that user.
    Loading the same file again changes nothing. A value may be a
    :class:`BadLine` (the reader could not parse it).

    By default the whole load is one write transaction: a refused line, a
    failure or Ctrl-C rolls it all back, so the store never holds the first
    20,000 lines of a file that failed at line 25,001. (The service's own
    writes wait for the load; its reads go on.) With ``continue_on_error``
    each chunk commits on its own and refused lines are counted and named
    instead, so the good lines are loaded and the report says which failed.

    Raises:
        LoadFailed: a refused line, when not ``continue_on_error``.
        RunInterrupted: Ctrl-C or SIGTERM; says what was loaded (nothing, by default).
    """
    report = LoadReport()
    numbered = iter(rows)
    if not continue_on_error:
        try:
            with store.write() as conn:
                while _load_next(store, conn, workspace_id, numbered, chunk_size, report, source):
                    pass
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"users load of {source} was interrupted; nothing was loaded",
                hint="run it again",
            ) from None
        except sa.exc.SQLAlchemyError as error:
            raise CohortsyncError(
                f"users load of {source} failed in the store: {whole_message(error)}; "
                "nothing was loaded",
                hint="check the store (its disk space, its server) and run it again",
            ) from error
        return report
    try:
        while True:
            with store.write() as conn:
                more = _load_next(store, conn, workspace_id, numbered, chunk_size, report, None)
            if not more:
                return report
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"users load of {source} was interrupted after loading {report.lines:,} lines"
            f" ({report.failed:,} failed); the lines loaded stay loaded",
            hint="run it again: lines already loaded change nothing the second time",
        ) from None
    except sa.exc.SQLAlchemyError as error:
        raise CohortsyncError(
            f"users load of {source} failed in the store after loading {report.lines:,} "
            f"lines: {whole_message(error)}; the lines loaded stay loaded",
            hint="check the store (its disk space, its server) and run it again",
        ) from error


def _load_next(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    numbered: Iterator[tuple[int, Any]],
    chunk_size: int,
    report: LoadReport,
    source: str | None,
) -> bool:
    """Load the next chunk; False when the input is exhausted.

    ``source`` set: a refused line raises :class:`LoadFailed` naming it;
    ``None``: refused lines are counted in ``report`` and left out.
    """
    chunk: list[ProfileLine] = []
    read = 0
    for line, value in islice(numbered, chunk_size):
        read += 1
        parsed = check_profile_line(value, line)
        if isinstance(parsed, BadLine):
            if source is not None:
                raise LoadFailed(source, parsed)
            report.fail(parsed)
        else:
            chunk.append(parsed)
    if chunk:
        _load_chunk(store, conn, workspace_id, chunk, report)
        report.lines += len(chunk)
    return read > 0  # a chunk of refused lines only is not the end of the input


def _chunks(values: list[Any], size: int = LOOKUP_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing_by_external_id(
    conn: sa.Connection, workspace_id: int, ids: list[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _chunks(ids):
        found.update(
            conn.execute(
                sa.select(users.c.external_id, users.c.id).where(
                    users.c.workspace_id == workspace_id, users.c.external_id.in_(part)
                )
            ).all()
        )
    return found


def _existing_by_alias(
    conn: sa.Connection, workspace_id: int, aliases: set[Alias]
) -> dict[Alias, int]:
    found: dict[Alias, int] = {}
    for part in _chunks(sorted({name for _, name in aliases})):
        for label, name, user_id in conn.execute(
            sa.select(
                user_aliases.c.alias_label, user_aliases.c.alias_name, user_aliases.c.user_id
            ).where(
                user_aliases.c.workspace_id == workspace_id, user_aliases.c.alias_name.in_(part)
            )
        ):
            if (label, name) in aliases:
                found[(label, name)] = user_id
    return found


def _existing_by_device(
    conn: sa.Connection, workspace_id: int, devices: list[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _chunks(devices):
        found.update(
            conn.execute(
                sa.select(user_devices.c.device_id, user_devices.c.user_id).where(
                    user_devices.c.workspace_id == workspace_id, user_devices.c.device_id.in_(part)
                )
            ).all()
        )
    return found


def _load_chunk(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    chunk: list[ProfileLine],
    report: LoadReport,
) -> None:
    by_external_id = _existing_by_external_id(
        conn, workspace_id, sorted({p.external_id for p in chunk if p.external_id})
    )
    anonymous = [p for p in chunk if p.external_id is None]
    by_alias = _existing_by_alias(conn, workspace_id, {a for p in anonymous for a in p.aliases})
    by_device = _existing_by_device(
        conn, workspace_id, sorted({d for p in anonymous for d in p.device_ids})
    )
    pending_external: dict[str, int] = {}
    new_users: list[dict[str, Any]] = []
    owners: list[int] = []
    next_id = 0
    now = utc_now()

    def create(external_id: str | None) -> int:
        nonlocal next_id
        next_id += 1
        new_users.append({"external_id": external_id})
        return -next_id  # placeholder until ids are allocated

    for profile in chunk:
        if profile.external_id is None and not profile.aliases and not profile.device_ids:
            # Nothing could ever find such a user, and loading it twice would make two.
            report.lines_without_identifiers += 1
            owners.append(0)
            continue
        if profile.external_id is not None:
            owner = by_external_id.get(profile.external_id) or pending_external.get(
                profile.external_id
            )
            if owner is None:
                owner = pending_external[profile.external_id] = create(profile.external_id)
            else:
                report.users_updated += 1
        else:
            known = [by_alias[a] for a in profile.aliases if a in by_alias]
            known += [by_device[d] for d in profile.device_ids if d in by_device]
            if known:
                owner = known[0]
                report.users_updated += 1
            else:
                owner = create(None)
            for alias in profile.aliases:
                by_alias.setdefault(alias, owner)
            for device in profile.device_ids:
                by_device.setdefault(device, owner)
        owners.append(owner)

    first = allocate_ids(conn, "users", len(new_users)) if new_users else 0

    def real(owner: int) -> int:
        return owner if owner > 0 else first + (-owner) - 1

    if new_users:
        conn.execute(
            sa.insert(users),
            [
                {
                    "id": first + index,
                    "workspace_id": workspace_id,
                    "external_id": user["external_id"],
                    "attributes": None,
                    "created_at": now,
                }
                for index, user in enumerate(new_users)
            ],
        )
        report.users_created += len(new_users)
    alias_rows = [
        {
            "workspace_id": workspace_id,
            "alias_label": label,
            "alias_name": name,
            "user_id": real(owner),
        }
        for profile, owner in zip(chunk, owners, strict=True)
        for label, name in profile.aliases
    ]
    device_rows = [
        {"workspace_id": workspace_id, "device_id": device, "user_id": real(owner)}
        for profile, owner in zip(chunk, owners, strict=True)
        for device in profile.device_ids
    ]
    if alias_rows:
        conn.execute(store.insert_ignore(user_aliases), alias_rows)
    if device_rows:
        conn.execute(store.insert_ignore(user_devices), device_rows)


# ---------------------------------------------------------------- REST operations


@dataclass(frozen=True)
class TrackedUser:
    """One object of ``/users/track`` ``attributes``."""

    external_id: str | None
    alias: Alias | None
    update_existing_only: bool
    custom: dict[str, Any] = field(default_factory=dict)


def _user_by_external_id(conn: sa.Connection, workspace_id: int, external_id: str) -> Any:
    return conn.execute(
        sa.select(users).where(
            users.c.workspace_id == workspace_id, users.c.external_id == external_id
        )
    ).first()


def _user_by_alias(conn: sa.Connection, workspace_id: int, alias: Alias) -> Any:
    return conn.execute(
        sa.select(users)
        .join(user_aliases, user_aliases.c.user_id == users.c.id)
        .where(
            user_aliases.c.workspace_id == workspace_id,
            user_aliases.c.alias_label == alias[0],
            user_aliases.c.alias_name == alias[1],
        )
    ).first()


def _create_user(
    conn: sa.Connection, workspace_id: int, external_id: str | None, alias: Alias | None
) -> int:
    user_id = allocate_ids(conn, "users", 1)
    conn.execute(
        sa.insert(users).values(
            id=user_id, workspace_id=workspace_id, external_id=external_id, created_at=utc_now()
        )
    )
    if alias is not None:
        conn.execute(
            sa.insert(user_aliases).values(
                workspace_id=workspace_id,
                alias_label=alias[0],
                alias_name=alias[1],
                user_id=user_id,
            )
        )
    return user_id


def _merge_attributes(
    conn: sa.Connection, user: Any, custom: dict[str, Any], *, keep: bool = False
) -> None:
    """Write custom attributes onto a user; with ``keep``, the user's own values win.

    The row is re-read ``FOR UPDATE`` (PostgreSQL; SQLite has one writer) so
    that concurrent updates of one user merge instead of overwriting each other.
    """
    if not custom:
        return
    stored = conn.execute(
        sa.select(users.c.attributes).where(users.c.id == user.id).with_for_update()
    ).scalar()
    current = orjson.loads(stored) if stored else {}
    merged = {**custom, **current} if keep else {**current, **custom}
    conn.execute(
        sa.update(users)
        .where(users.c.id == user.id)
        .values(attributes=orjson.dumps(merged).decode())
    )


def track_users(store: Store, workspace_id: int, items: list[TrackedUser]) -> list[str]:
    """Create or update users by external id or alias; return per-item errors."""
    errors = []
    with store.write() as conn:
        for index, item in enumerate(items):
            if item.external_id is not None:
                user = _user_by_external_id(conn, workspace_id, item.external_id)
            else:
                assert item.alias is not None
                user = _user_by_alias(conn, workspace_id, item.alias)
            if user is None:
                if item.update_existing_only:
                    errors.append(
                        f"attributes[{index}]: no such user and _update_existing_only is true"
                    )
                    continue
                _create_user(conn, workspace_id, item.external_id, item.alias)
                if item.external_id is not None:
                    user = _user_by_external_id(conn, workspace_id, item.external_id)
                else:
                    assert item.alias is not None
                    user = _user_by_alias(conn, workspace_id, item.alias)
            _merge_attributes(conn, user, item.custom)
    return errors


def add_aliases(
    store: Store, workspace_id: int, items: list[tuple[str | None, Alias]]
) -> list[str]:
    """``/users/alias/new``: an alias on an identified user, or a new alias-only user."""
    errors = []
    with store.write() as conn:
        for index, (external_id, alias) in enumerate(items):
            holder = _user_by_alias(conn, workspace_id, alias)
            if holder is not None:
                if external_id is None or holder.external_id != external_id:
                    errors.append(f"user_aliases[{index}]: alias already belongs to another user")
                continue
            if external_id is None:
                _create_user(conn, workspace_id, None, alias)
                continue
            user = _user_by_external_id(conn, workspace_id, external_id)
            if user is None:
                _create_user(conn, workspace_id, external_id, alias)
            else:
                conn.execute(
                    sa.insert(user_aliases).values(
                        workspace_id=workspace_id,
                        alias_label=alias[0],
                        alias_name=alias[1],
                        user_id=user.id,
                    )
                )
    return errors


def identify_users(store: Store, workspace_id: int, items: list[tuple[str, Alias]]) -> list[str]:
    """``/users/identify``: give an alias-only user an external id.

    When a user with that external id exists, the alias-only user is merged
    into it (aliases, device ids, cohort memberships, attributes the
    identified user lacks) and disappears. Either way the user is identified
    from then on, so its device ids no longer match in cohort imports.
    """
    errors = []
    with store.write() as conn:
        for index, (external_id, alias) in enumerate(items):
            source = _user_by_alias(conn, workspace_id, alias)
            if source is None:
                errors.append(f"aliases_to_identify[{index}]: no user has this alias")
                continue
            if source.external_id is not None:
                if source.external_id != external_id:
                    errors.append(
                        f"aliases_to_identify[{index}]: the alias belongs to an identified user"
                    )
                continue
            target = _user_by_external_id(conn, workspace_id, external_id)
            if target is None:
                conn.execute(
                    sa.update(users).where(users.c.id == source.id).values(external_id=external_id)
                )
                continue
            _merge_user(conn, source, target)
    return errors


def _merge_user(conn: sa.Connection, source: Any, target: Any) -> None:
    conn.execute(
        sa.update(user_aliases).where(user_aliases.c.user_id == source.id).values(user_id=target.id)
    )
    conn.execute(
        sa.update(user_devices).where(user_devices.c.user_id == source.id).values(user_id=target.id)
    )
    # Memberships are keyed (cohort, user): ask per cohort of the workspace.
    workspace_cohorts = list(
        conn.execute(sa.select(cohorts.c.id).where(cohorts.c.workspace_id == source.workspace_id))
        .scalars()
        .all()
    )

    def cohorts_of(user_id: int) -> set[int]:
        return set(
            conn.execute(
                sa.select(cohort_members.c.cohort_pk).where(
                    cohort_members.c.cohort_pk.in_(workspace_cohorts),
                    cohort_members.c.user_id == user_id,
                )
            ).scalars()
        )

    source_cohorts = cohorts_of(source.id)
    missing = source_cohorts - cohorts_of(target.id)
    if missing:
        conn.execute(
            sa.insert(cohort_members),
            [{"cohort_pk": pk, "user_id": target.id} for pk in sorted(missing)],
        )
    if source_cohorts:
        conn.execute(
            sa.delete(cohort_members).where(
                cohort_members.c.cohort_pk.in_(sorted(source_cohorts)),
                cohort_members.c.user_id == source.id,
            )
        )
    if source.attributes:
        _merge_attributes(conn, target, orjson.loads(source.attributes), keep=True)
    conn.execute(sa.delete(users).where(users.c.id == source.id))


def export_users(
    store: Store,
    workspace_id: int,
    external_ids: list[str],
    aliases: list[Alias],
    device_id: str | None,
) -> dict[str, Any]:
    """``/users/export/ids``: profiles by external id, alias or device id."""
    with store.read() as conn:
        found_ext = {
            row.external_id: row.id
            for row in conn.execute(
                sa.select(users.c.id, users.c.external_id).where(
                    users.c.workspace_id == workspace_id, users.c.external_id.in_(external_ids)
                )
            )
        }
        ids = set(found_ext.values())
        for alias in aliases:
            user = _user_by_alias(conn, workspace_id, alias)
            if user is not None:
                ids.add(user.id)
        if device_id is not None:
            ids.update(
                conn.execute(
                    sa.select(user_devices.c.user_id).where(
                        user_devices.c.workspace_id == workspace_id,
                        user_devices.c.device_id == device_id,
                    )
                ).scalars()
            )
        profiles = _export_profiles(conn, workspace_id, sorted(ids))
    return {
        "users": profiles,
        "invalid_user_ids": [uid for uid in external_ids if uid not in found_ext],
    }


def _export_profiles(
    conn: sa.Connection, workspace_id: int, ids: list[int]
) -> list[dict[str, Any]]:
    described = describe_users_by_id(conn, sa.select(users.c.id).where(users.c.id.in_(ids)))
    extras = {
        row.id: row
        for row in conn.execute(
            sa.select(users.c.id, users.c.attributes, users.c.created_at).where(users.c.id.in_(ids))
        )
    }
    memberships: dict[int, list[str]] = {}
    for user_id, cohort_id in conn.execute(
        sa.select(cohort_members.c.user_id, cohorts.c.cohort_id)
        .select_from(cohorts)
        .join(cohort_members, cohorts.c.id == cohort_members.c.cohort_pk)
        .where(cohorts.c.workspace_id == workspace_id, cohort_members.c.user_id.in_(ids))
        .order_by(cohorts.c.cohort_id)
    ):
        memberships.setdefault(user_id, []).append(cohort_id)
    profiles = []
    for user_id, member in sorted(described.items(), key=lambda pair: member_sort_key(pair[1])):
        row = extras[user_id]
        profiles.append(
            {
                "external_id": member["external_id"],
                "user_aliases": member["aliases"],
                "devices": [{"device_id": device} for device in member["device_ids"]],
                "custom_attributes": orjson.loads(row.attributes) if row.attributes else {},
                "created_at": row.created_at,
                "cohorts": memberships.get(user_id, []),
            }
        )
    return profiles
