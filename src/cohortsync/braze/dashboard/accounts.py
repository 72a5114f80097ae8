"""Dashboard users, kept in the store: accounts, workspace memberships and one-time links.

``cohortsync braze user create`` runs in its own process and the link it
prints is opened in the service's: so, unlike the console's in-memory links,
the dashboard's live in the store (only a digest of each token). The key
signing the session cookies lives there too, drawn on first start, so a
restart keeps everyone logged in.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cohortsync.braze.store import Store, account_queries, dashboard_queries, utc_now
from cohortsync.errors import ConfigError
from cohortsync.web.guard import token_digest
from cohortsync.web.passwords import hash_password, password_problem

LINK_LIFETIME = timedelta(hours=24)
SESSION_SECRET = "session"
# How long a service trusts the session secret it read before reading it again.
SECRET_REFRESH_SECONDS = 2.0
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class DashboardUser:
    """A dashboard user as the CLI shows it."""

    email: str
    workspaces: tuple[str, ...]
    has_password: bool

    def as_json(self) -> dict[str, object]:
        return {
            "email": self.email,
            "workspaces": list(self.workspaces),
            "has_password": self.has_password,
        }


class StoreAccounts:
    """The :class:`~cohortsync.web.guard.AccountStore` of the dashboard: users by email."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._secret: str | None = None
        self._read_at = 0.0

    def password_hash(self, user: str) -> str | None:
        with self.store.read() as conn:
            row = dashboard_queries.user_row(conn, user)
        return None if row is None else row.password_hash

    def account_exists(self, user: str) -> bool:
        with self.store.read() as conn:
            return dashboard_queries.user_row(conn, user) is not None

    def set_password_hash(self, user: str, password_hash: str) -> None:
        with self.store.write() as conn:
            dashboard_queries.set_password_hash(conn, user, password_hash)

    def session_secret(self) -> str:
        """The key that signs session cookies: drawn once per store, then read back.

        Read again from the store every :data:`SECRET_REFRESH_SECONDS`, so that
        :func:`end_sessions`, run by another process, logs out the sessions of
        a running service within that time.
        """
        now = time.monotonic()
        if self._secret is None or now - self._read_at >= SECRET_REFRESH_SECONDS:
            self._secret = session_secret(self.store)
            self._read_at = now
        return self._secret


class StoreLoginLinks:
    """The :class:`~cohortsync.web.guard.LoginLinks` of the dashboard, kept in the store."""

    lost_link_advice = (
        "A login link works once, for 24 hours. Log in with your password, or ask for a "
        "new link: cohortsync braze user link EMAIL prints one."
    )

    def __init__(self, store: Store) -> None:
        self.store = store

    def issue(self, user: str) -> str:
        return issue_login_link(self.store, user)

    def consume(self, token: str) -> str | None:
        with self.store.write() as conn:
            return dashboard_queries.take_login_link(conn, token_digest(token), utc_now())


def end_sessions(store: Store) -> None:
    """Log every dashboard session of the store out: a new signing secret makes old cookies void.

    A running service reads the new secret within :data:`SECRET_REFRESH_SECONDS`.
    """
    with store.write() as conn:
        dashboard_queries.replace_secret(conn, SESSION_SECRET, secrets.token_urlsafe(32))


def session_secret(store: Store) -> str:
    with store.read() as conn:
        found = dashboard_queries.secret(conn, SESSION_SECRET)
    if found is not None:
        return found
    with store.write() as conn:
        found = dashboard_queries.secret(conn, SESSION_SECRET)
        if found is None:
            found = secrets.token_urlsafe(32)
            dashboard_queries.insert_secret(conn, SESSION_SECRET, found)
    return found


def _user_id(conn: sa.Connection, email: str) -> int:
    row = dashboard_queries.user_row(conn, email)
    if row is None:
        raise ConfigError(
            f"no dashboard user {email!r} in this store",
            hint="create one with 'cohortsync braze user create --email EMAIL --workspace W'",
        )
    return int(row.id)


def _workspace_ids(conn: sa.Connection, names: list[str]) -> list[int]:
    found = []
    for name in names:
        workspace_id = account_queries.workspace_id_of(conn, name)
        if workspace_id is None:
            raise ConfigError(
                f"no workspace {name!r} in this store",
                hint="create it with 'cohortsync braze workspace create NAME', or check --db",
            )
        found.append(workspace_id)
    return found


def _checked_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise ConfigError(
            f"{email!r} is not an email address", hint="give --email NAME@DOMAIN, e.g. ana@acme.io"
        )
    return email


def create_user(
    store: Store, email: str, *, workspaces: list[str], password: str | None = None
) -> DashboardUser:
    """Create a dashboard user who sees ``workspaces``; with ``password``, it is set too.

    An existing user gets the workspaces added instead, so the command can be
    run again to give someone another workspace. The password is checked
    before anything is written.
    """
    email = _checked_email(email)
    if not workspaces:
        raise ConfigError(
            "a dashboard user needs at least one workspace",
            hint="give --workspace NAME (repeat it for several)",
        )
    if password is not None:
        problem = password_problem(password)
        if problem:
            raise ConfigError(f"this password cannot be used: {problem}", hint="choose another")
    password_hash = None if password is None else hash_password(password)
    with store.write() as conn:
        workspace_ids = _workspace_ids(conn, workspaces)
        row = dashboard_queries.user_row(conn, email)
        user_id = (
            dashboard_queries.insert_user(conn, email, password_hash) if row is None else row.id
        )
        if row is not None and password_hash is not None:
            dashboard_queries.set_password_hash(conn, email, password_hash)
        for workspace_id in workspace_ids:
            dashboard_queries.add_membership(conn, user_id, workspace_id)
    return describe_user(store, email)


def describe_user(store: Store, email: str) -> DashboardUser:
    with store.read() as conn:
        row = dashboard_queries.user_row(conn, email)
        if row is None:
            _user_id(conn, email)  # raises the one-line error
        names = tuple(w.name for w in dashboard_queries.user_workspaces(conn, email))
    return DashboardUser(email=email, workspaces=names, has_password=row.password_hash is not None)


def list_users(store: Store) -> list[DashboardUser]:
    with store.read() as conn:
        rows = dashboard_queries.users_with_workspaces(conn)
    return [
        DashboardUser(
            email=row.email, workspaces=tuple(names), has_password=row.password_hash is not None
        )
        for row, names in rows
    ]


def issue_login_link(store: Store, email: str) -> str:
    """A token that logs ``email`` in once within 24 hours; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    expires = (datetime.now(UTC) + LINK_LIFETIME).isoformat(timespec="milliseconds")
    with store.write() as conn:
        dashboard_queries.insert_login_link(
            conn, token_digest(token), _user_id(conn, email), expires
        )
    return token


def workspaces_of(store: Store, email: str) -> list[tuple[int, str]]:
    """The (id, name) of every workspace the user belongs to, by name."""
    with store.read() as conn:
        return [(int(w.id), str(w.name)) for w in dashboard_queries.user_workspaces(conn, email)]
