"""Bulk load of user profiles from NDJSON lines, a million users a minute.

Lines are read in chunks of :data:`LOAD_CHUNK`; each chunk costs one lookup
per identifier kind and plain ``executemany`` inserts, never a round trip
per user.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store import (
    MAX_IDENTIFIER_LENGTH,
    Alias,
    Store,
    user_queries,
    utc_now,
)
from cohortsync.braze.validation import is_identifier, parse_alias
from cohortsync.errors import CohortsyncError, ConfigError, RunInterrupted, whole_message

LOAD_CHUNK = 20_000
FAILURES_LISTED = 20
"""How many failed lines a ``--continue-on-error`` report names (all are counted)."""
LOAD_LINE_SHAPE = (
    '{"external_id": "u1", "aliases": [{"alias_label": "email", "alias_name": "a@x.io"}], '
    '"device_ids": ["d1"]}'
)


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
    _check_one_alias_per_label(external_id, aliases)
    if not isinstance(raw_devices, list) or not all(is_identifier(d) and d for d in raw_devices):
        raise bad(
            f"device_ids is not an array of non-empty strings of at most "
            f"{MAX_IDENTIFIER_LENGTH} characters without NUL"
        )
    return ProfileLine(external_id, tuple(aliases), tuple(raw_devices))


def _check_one_alias_per_label(external_id: str | None, aliases: list[Alias]) -> None:
    """Braze gives a user one alias per label: a line may not give two."""
    named: dict[str, str] = {}
    for label, name in aliases:
        first = named.setdefault(label, name)
        if first != name:
            raise _Refused(
                f"gives {_user_named(external_id, aliases)} two aliases labelled {label!r} "
                f"({first!r} and {name!r}); a user has one alias per label"
            )


def _user_named(external_id: str | None, aliases: Iterable[Alias]) -> str:
    """The user of a line, as a message names it."""
    if external_id is not None:
        return f"the user {external_id!r}"
    first = next(iter(aliases), None)
    if first is None:
        return "the user of the line's device ids"
    return f"the user of alias {first[0]!r}={first[1]!r}"


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
    try:
        if not continue_on_error:
            with store.write() as conn:
                while _load_next(store, conn, workspace_id, numbered, chunk_size, report, source):
                    pass
            return report
        while True:
            with store.write() as conn:
                more = _load_next(store, conn, workspace_id, numbered, chunk_size, report, None)
            if not more:
                return report
    except KeyboardInterrupt:
        done = f" after loading {report.lines:,} lines ({report.failed:,} failed)"
        raise RunInterrupted(
            f"users load of {source} was interrupted{done if continue_on_error else ''}; "
            + _what_stays(continue_on_error),
            hint="run it again: lines already loaded change nothing the second time"
            if continue_on_error
            else "run it again",
        ) from None
    except sa.exc.SQLAlchemyError as error:
        done = f" after loading {report.lines:,} lines" if continue_on_error else ""
        raise CohortsyncError(
            f"users load of {source} failed in the store{done}: {whole_message(error)}; "
            + _what_stays(continue_on_error),
            hint="check the store (its disk space, its server) and run it again",
        ) from error


def _what_stays(continue_on_error: bool) -> str:
    """What a load stopped half-way leaves in the store."""
    return "the lines loaded stay loaded" if continue_on_error else "nothing was loaded"


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
    numbers: list[int] = []
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
            numbers.append(line)
    while chunk:
        refused = _load_chunk(store, conn, workspace_id, chunk, numbers, report)
        if not refused:
            report.lines += len(chunk)
            break
        if source is not None:
            raise LoadFailed(source, refused[0])
        # Leave the refused lines out and resolve the others again, without them.
        for bad in refused:
            report.fail(bad)
        left = {bad.line for bad in refused}
        kept = [(n, p) for n, p in zip(numbers, chunk, strict=True) if n not in left]
        numbers = [n for n, _ in kept]
        chunk = [p for _, p in kept]
    return read > 0  # a chunk of refused lines only is not the end of the input


def _load_chunk(
    store: Store,
    conn: sa.Connection,
    workspace_id: int,
    chunk: list[ProfileLine],
    numbers: list[int],
    report: LoadReport,
) -> list[BadLine]:
    """Load the chunk's lines, or write nothing and return the lines that would
    give a user a second alias of a label (Braze keeps one per label)."""
    by_external_id = user_queries.ids_by_external_id(
        conn, workspace_id, sorted({p.external_id for p in chunk if p.external_id})
    )
    anonymous = [p for p in chunk if p.external_id is None]
    by_alias = user_queries.owners_by_alias(
        conn, workspace_id, {a for p in anonymous for a in p.aliases}
    )
    by_device = user_queries.owners_by_device_id(
        conn, workspace_id, sorted({d for p in anonymous for d in p.device_ids})
    )
    pending_external: dict[str, int] = {}
    new_users: list[dict[str, Any]] = []
    owners: list[int] = []
    next_id = 0
    updated = without_identifiers = 0
    now = utc_now()

    def create(external_id: str | None) -> int:
        nonlocal next_id
        next_id += 1
        new_users.append({"external_id": external_id})
        return -next_id  # placeholder until ids are allocated

    for profile in chunk:
        if profile.external_id is None and not profile.aliases and not profile.device_ids:
            # Nothing could ever find such a user, and loading it twice would make two.
            without_identifiers += 1
            owners.append(0)
            continue
        if profile.external_id is not None:
            owner = by_external_id.get(profile.external_id) or pending_external.get(
                profile.external_id
            )
            if owner is None:
                owner = pending_external[profile.external_id] = create(profile.external_id)
            else:
                updated += 1
        else:
            known = [by_alias[a] for a in profile.aliases if a in by_alias]
            known += [by_device[d] for d in profile.device_ids if d in by_device]
            if known:
                owner = known[0]
                updated += 1
            else:
                owner = create(None)
            for alias in profile.aliases:
                by_alias.setdefault(alias, owner)
            for device in profile.device_ids:
                by_device.setdefault(device, owner)
        owners.append(owner)

    refused = _second_aliases(conn, workspace_id, chunk, numbers, owners)
    if refused:
        return refused
    report.users_updated += updated
    report.lines_without_identifiers += without_identifiers
    first = user_queries.allocate_ids(conn, "users", len(new_users)) if new_users else 0

    def real(owner: int) -> int:
        return owner if owner > 0 else first + (-owner) - 1

    if new_users:
        user_queries.insert_users(
            conn,
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
    user_queries.insert_identifiers(store, conn, alias_rows, device_rows)
    return []


def _second_aliases(
    conn: sa.Connection,
    workspace_id: int,
    chunk: list[ProfileLine],
    numbers: list[int],
    owners: list[int],
) -> list[BadLine]:
    """The lines that would give their user an alias of a label the user holds
    (in the store, or from an earlier line) under another name.

    An alias held by another user stays there and gives this one nothing, so
    it is no second alias; ``owners`` may hold the placeholders of new users.
    """
    claimed = user_queries.owners_by_alias(
        conn, workspace_id, {a for p in chunk for a in p.aliases}
    )
    # Only an existing user given an alias nobody holds yet can get a second one.
    existing = sorted(
        {
            owner
            for profile, owner in zip(chunk, owners, strict=True)
            if owner > 0 and any(alias not in claimed for alias in profile.aliases)
        }
    )
    held = user_queries.alias_names_by_user_and_label(conn, existing)
    refused: list[BadLine] = []
    for profile, line, owner in zip(chunk, numbers, owners, strict=True):
        if owner == 0:
            continue
        for label, name in profile.aliases:
            if (label, name) in claimed:
                continue
            other = held.setdefault((owner, label), name)
            if other != name:
                refused.append(
                    BadLine(
                        line,
                        f"gives {_user_named(profile.external_id, profile.aliases)} a second "
                        f"alias labelled {label!r} ({name!r}) beside {other!r}; a user has "
                        "one alias per label",
                    )
                )
                break
            claimed[(label, name)] = owner
    return refused
