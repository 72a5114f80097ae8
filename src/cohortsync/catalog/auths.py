"""Saved Braze authentications: a named endpoint, its key and its destination type.

``type`` is ``partner-cohort`` (the key is a data import key) or
``rest-attribute`` (the key is a REST API key); authentications saved before
the column existed are ``partner-cohort`` (catalog revision 0006).

The key is stored Fernet-encrypted (see :mod:`cohortsync.secrets`);
only its last four characters are kept in clear, to recognise it in listings.
The partner API key is never stored here: it is the vendor's, chosen from
settings by the endpoint's region when the export builds a destination
(:mod:`cohortsync.export.destinations`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypedDict

import sqlalchemy as sa

from cohortsync import secrets
from cohortsync.catalog.db import metadata, stored_utc
from cohortsync.catalog.rows import delete_rows, first_row
from cohortsync.definitions import Authentication
from cohortsync.definitions.fields import DEFAULT_PARTNER
from cohortsync.errors import ConfigError
from cohortsync.settings import Settings

PARTNER_COHORT = "partner-cohort"

auths = sa.Table(
    "auths",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False, default=DEFAULT_PARTNER),
    sa.Column(
        "type", sa.String, nullable=False, default=PARTNER_COHORT, server_default=PARTNER_COHORT
    ),
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    sa.Column("key_hint", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class AuthRecord:
    """A saved authentication as listed: never the key itself."""

    name: str
    endpoint: str
    partner: str
    masked_key: str
    created_at: dt.datetime
    type: str = PARTNER_COHORT

    @property
    def key_label(self) -> str:
        """What the key is, for people: a data import key or a REST API key."""
        return "data import key" if self.type == PARTNER_COHORT else "REST API key"

    def to_dict(self) -> dict[str, str]:
        """The listing's JSON: the masked key under the name of what it is."""
        key = "data_import_key" if self.type == PARTNER_COHORT else "rest_api_key"
        return {
            "name": self.name,
            "type": self.type,
            "endpoint": self.endpoint,
            "partner": self.partner,
            key: self.masked_key,
            "created_at": self.created_at.isoformat(),
        }


def _record(row: sa.Row[tuple[object, ...]]) -> AuthRecord:
    return AuthRecord(
        name=row.name,
        endpoint=row.endpoint,
        partner=row.partner,
        masked_key="****" + row.key_hint,
        created_at=stored_utc(row.created_at),
        type=row.type,
    )


def save_auth(catalog: sa.Engine, settings: Settings, auth: Authentication) -> AuthRecord:
    """Save a new authentication; its name must be free.

    Raises:
        ConfigError: the name is taken.
    """
    with catalog.begin() as conn:
        if conn.execute(sa.select(auths.c.name).where(auths.c.name == auth.name)).first():
            raise exists_already(auth.name)
        return _insert(conn, settings, auth)


def exists_already(name: str) -> ConfigError:
    """The error for creating an authentication under a name that is taken."""
    return ConfigError(
        f"an authentication named {name!r} exists already",
        hint=f"pick another name or run 'cohortsync auth delete {name}' first",
    )


def upsert_auth(catalog: sa.Engine, settings: Settings, auth: Authentication) -> bool:
    """Create the authentication, or rewrite its endpoint, partner, type and (encrypted) key.

    Returns whether anything changed: an authentication saved already with the
    same endpoint, partner, type and key is left as it is (its key is not
    re-encrypted).
    """
    fields = {"endpoint": auth.endpoint, "partner": auth.partner, "type": auth.type}
    with catalog.begin() as conn:
        row = conn.execute(sa.select(auths).where(auths.c.name == auth.name)).first()
        if row is None:
            _insert(conn, settings, auth)
            return True
        if _fields(row, settings) == {**fields, "data_import_key": auth.data_import_key}:
            return False
        conn.execute(
            auths.update()
            .where(auths.c.name == auth.name)
            .values(**fields, **_key_columns(conn, settings, auth.data_import_key))
        )
    return True


def _insert(conn: sa.Connection, settings: Settings, auth: Authentication) -> AuthRecord:
    """Add the row of a new authentication, its key encrypted, created now."""
    key = _key_columns(conn, settings, auth.data_import_key)
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        auths.insert().values(
            name=auth.name,
            endpoint=auth.endpoint,
            partner=auth.partner,
            type=auth.type,
            created_at=now,
            **key,
        )
    )
    return AuthRecord(
        auth.name, auth.endpoint, auth.partner, "****" + key["key_hint"], now, auth.type
    )


def auth_fields(catalog: sa.Engine, settings: Settings, name: str) -> dict[str, str] | None:
    """The endpoint, partner, type and decrypted key saved under ``name``, if any.

    The key is under ``data_import_key`` whatever the type (a REST API key for
    ``rest-attribute``), as in the export's destination.
    """
    row = first_row(catalog, auths, auths.c.name == name)
    return None if row is None else _fields(row, settings)


def _fields(row: sa.Row[tuple[object, ...]], settings: Settings) -> dict[str, str]:
    return {
        "endpoint": row.endpoint,
        "partner": row.partner,
        "type": row.type,
        "data_import_key": secrets.decrypt(settings.home_dir, row.encrypted_key),
    }


class _KeyColumns(TypedDict):
    encrypted_key: bytes
    key_hint: str


def _key_columns(conn: sa.Connection, settings: Settings, data_import_key: str) -> _KeyColumns:
    """The stored form of a data import key: encrypted, with its last characters in clear.

    The home's key file is created here only when no authentication is saved
    yet (see :mod:`cohortsync.secrets`).
    """
    encrypted = secrets.encrypt(settings.home_dir, data_import_key, create_key=not _any_saved(conn))
    return {
        "encrypted_key": encrypted,
        "key_hint": secrets.mask(data_import_key).removeprefix("****"),
    }


def _any_saved(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(auths.c.name).limit(1)).first() is not None


def check_secret_key(catalog: sa.Engine, settings: Settings) -> None:
    """Fail early when the key file is missing while authentications are saved.

    ``auth create`` calls this before it checks the credentials against the
    endpoint, so the user learns about the lost key first.

    Raises:
        ConfigError: the key file is missing and the catalog has authentications.
    """
    if secrets.key_file_path(settings.home_dir).exists():
        return
    with catalog.connect() as conn:
        if _any_saved(conn):
            raise secrets.missing_key_error(settings.home_dir)


def rekey_auths(catalog: sa.Engine, settings: Settings) -> int:
    """Re-encrypt every saved key under a new secret key, and retire the old one.

    Three steps, each leaving every saved key readable if the command stops
    there: the key file gets the new key first and keeps the old ones after it
    (:func:`secrets.add_new_key`); one transaction re-encrypts every saved key
    with the new one; a second, holding the catalog's write lock, checks that
    every saved key reads with the new key alone and only then makes it the
    file's one key. A key saved meanwhile by another command under the old key
    is found by that check, and the old key is kept. Returns how many keys
    were re-encrypted.

    Raises:
        ConfigError: the key file is missing, not private, or not a key; or an
            authentication was saved under the old key while re-keying.
    """
    from cryptography.fernet import Fernet, InvalidToken

    check_secret_key(catalog, settings)
    home = settings.home_dir
    new_key = secrets.add_new_key(home)
    with catalog.begin() as conn:
        _write_lock(conn)
        cipher = secrets.load_fernet(home)
        rows = conn.execute(sa.select(auths.c.name, auths.c.encrypted_key)).all()
        for name, token in rows:
            conn.execute(
                auths.update()
                .where(auths.c.name == name)
                .values(encrypted_key=cipher.rotate(token))
            )
    only_new = Fernet(new_key)
    with catalog.begin() as conn:
        _write_lock(conn)
        for name, token in conn.execute(sa.select(auths.c.name, auths.c.encrypted_key)):
            try:
                only_new.decrypt(token)
            except InvalidToken:
                raise ConfigError(
                    f"authentication {name!r} was saved under the old secret key while "
                    "re-keying; the old key is kept in the key file",
                    hint="run 'cohortsync auth rekey' again",
                ) from None
        secrets.keep_only_key(home, new_key)
    return len(rows)


def _write_lock(conn: sa.Connection) -> None:
    """Take SQLite's write lock now, so no other command saves a key until the commit."""
    conn.exec_driver_sql("UPDATE auths SET name = name WHERE 0")


def list_auths(catalog: sa.Engine) -> list[AuthRecord]:
    """Every saved authentication, by name."""
    with catalog.connect() as conn:
        rows = conn.execute(sa.select(auths).order_by(auths.c.name)).all()
    return [_record(row) for row in rows]


def get_auth(catalog: sa.Engine, name: str) -> AuthRecord:
    """One saved authentication.

    Raises:
        ConfigError: no authentication has that name.
    """
    row = first_row(catalog, auths, auths.c.name == name)
    if row is None:
        raise unknown_auth(name)
    return _record(row)


def delete_auth(catalog: sa.Engine, name: str) -> None:
    """Delete a saved authentication.

    Raises:
        ConfigError: no authentication has that name.
    """
    if not delete_rows(catalog, auths, auths.c.name == name):
        raise unknown_auth(name)


def unknown_auth(name: str) -> ConfigError:
    """The error of a name no authentication is saved under."""
    return ConfigError(
        f"no authentication named {name!r}",
        hint="see 'cohortsync auth list', or create it with 'cohortsync auth create'",
    )
