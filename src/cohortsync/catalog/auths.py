"""Saved Braze authentications: a named endpoint and its data import key.

The data import key is stored Fernet-encrypted (see :mod:`cohortsync.secrets`);
only its last four characters are kept in clear, to recognise it in listings.
The partner API key is never stored here: it is the vendor's, chosen from
settings by the endpoint's region when a destination is built.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from cohortsync import secrets
from cohortsync.catalog.db import metadata, open_catalog
from cohortsync.errors import ConfigError
from cohortsync.export.spec import DEFAULT_PARTNER, Destination
from cohortsync.settings import Settings

auths = sa.Table(
    "auths",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False, default=DEFAULT_PARTNER),
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

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "partner": self.partner,
            "data_import_key": self.masked_key,
            "created_at": self.created_at.isoformat(),
        }


def _record(row: sa.Row[tuple[object, ...]]) -> AuthRecord:
    created = row.created_at
    if created.tzinfo is None:  # SQLite drops the zone; we always write UTC
        created = created.replace(tzinfo=dt.UTC)
    return AuthRecord(
        name=row.name,
        endpoint=row.endpoint,
        partner=row.partner,
        masked_key="****" + row.key_hint,
        created_at=created,
    )


def save_auth(
    catalog: sa.Engine,
    settings: Settings,
    *,
    name: str,
    endpoint: str,
    data_import_key: str,
    partner: str = DEFAULT_PARTNER,
) -> AuthRecord:
    """Save a new authentication; its name must be free.

    Raises:
        ConfigError: an authentication of that name exists already.
    """
    token = secrets.encrypt(settings.home_dir, data_import_key)
    hint = secrets.mask(data_import_key).removeprefix("****")
    now = dt.datetime.now(dt.UTC)
    with catalog.begin() as conn:
        if conn.execute(sa.select(auths.c.name).where(auths.c.name == name)).first():
            raise ConfigError(
                f"an authentication named {name!r} exists already",
                hint=f"pick another name or run 'cohortsync auth delete {name}' first",
            )
        conn.execute(
            auths.insert().values(
                name=name,
                endpoint=endpoint,
                partner=partner,
                encrypted_key=token,
                key_hint=hint,
                created_at=now,
            )
        )
    return AuthRecord(name, endpoint, partner, "****" + hint, now)


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
    with catalog.connect() as conn:
        row = conn.execute(sa.select(auths).where(auths.c.name == name)).first()
    if row is None:
        raise _unknown(name)
    return _record(row)


def delete_auth(catalog: sa.Engine, name: str) -> None:
    """Delete a saved authentication.

    Raises:
        ConfigError: no authentication has that name.
    """
    with catalog.begin() as conn:
        deleted = conn.execute(auths.delete().where(auths.c.name == name)).rowcount
    if not deleted:
        raise _unknown(name)


def destination_for_auth(name: str, settings: Settings | None = None) -> Destination:
    """Build the :class:`Destination` of a saved authentication.

    The data import key is decrypted here, and the partner API key is chosen
    from settings by the endpoint's region, so callers (saved queries,
    activations, the scheduler) only ever handle an auth name.

    Raises:
        ConfigError: unknown name, unreadable key file, or no partner API key.
    """
    settings = settings or Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        with catalog.connect() as conn:
            row = conn.execute(sa.select(auths).where(auths.c.name == name)).first()
    finally:
        catalog.dispose()
    if row is None:
        raise _unknown(name)
    return Destination(
        endpoint=row.endpoint,
        data_import_key=secrets.decrypt(settings.home_dir, row.encrypted_key),
        partner_api_key=settings.partner_api_key_for(row.endpoint),
        partner=row.partner,
        auth_name=name,
    )


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"no authentication named {name!r}",
        hint="see 'cohortsync auth list', or create it with 'cohortsync auth create'",
    )
