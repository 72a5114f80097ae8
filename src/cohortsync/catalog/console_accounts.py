"""The console's account: its password hash and the secret its sessions are signed with.

One row per account. The password is stored only as an argon2 hash (see
:mod:`cohortsync.web.passwords`); the row is created, without a password, the
first time the console starts. ``session_secret`` signs the session cookies,
so a restart keeps everyone logged in, and a new password (which draws a new
secret) logs every other session out.
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa

from cohortsync.catalog.db import metadata
from cohortsync.catalog.rows import first_row, update_rows

console_accounts = sa.Table(
    "console_accounts",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("password_hash", sa.String, nullable=True),
    sa.Column("session_secret", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def ensure_account(catalog: sa.Engine, name: str) -> bool:
    """Create the account ``name`` without a password unless it exists; True when created."""
    now = dt.datetime.now(dt.UTC)
    with catalog.begin() as conn:
        if conn.execute(sa.select(console_accounts.c.name).where(_named(name))).first():
            return False
        conn.execute(
            console_accounts.insert().values(
                name=name,
                password_hash=None,
                session_secret=secrets.token_urlsafe(32),
                created_at=now,
                updated_at=now,
            )
        )
    return True


def account_exists(catalog: sa.Engine, name: str) -> bool:
    return first_row(catalog, console_accounts, _named(name)) is not None


def password_hash(catalog: sa.Engine, name: str) -> str | None:
    """The stored hash, or None for no such account or no password yet."""
    row = first_row(catalog, console_accounts, _named(name))
    return None if row is None else row.password_hash


def set_password_hash(catalog: sa.Engine, name: str, new_hash: str) -> None:
    """Store a new hash and draw a new session secret: other sessions end."""
    update_rows(
        catalog,
        console_accounts,
        _named(name),
        password_hash=new_hash,
        session_secret=secrets.token_urlsafe(32),
        updated_at=dt.datetime.now(dt.UTC),
    )


def session_secret(catalog: sa.Engine, name: str) -> str:
    """The secret the account's session cookies are signed with."""
    row = first_row(catalog, console_accounts, _named(name))
    if row is None:
        raise LookupError(f"no console account {name!r}")
    return str(row.session_secret)


def _named(name: str) -> sa.ColumnElement[bool]:
    return console_accounts.c.name == name
