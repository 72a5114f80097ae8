"""The console's account, kept in the catalog (:mod:`cohortsync.catalog.console_accounts`).

The console has one account, ``admin``. It is created the first time the
console starts; its password comes from ``COHORTSYNC_CONSOLE_PASSWORD`` when
set (and follows it when it changes), otherwise the console prints a one-time
login link and the password is chosen in the browser.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from cohortsync.catalog import console_accounts as stored
from cohortsync.errors import ConfigError
from cohortsync.web.passwords import hash_password, password_problem, verify_password

CONSOLE_USER = "admin"
PASSWORD_ENV = "COHORTSYNC_CONSOLE_PASSWORD"


class CatalogAccounts:
    """The :class:`~cohortsync.web.guard.AccountStore` of the console."""

    def __init__(self, catalog: sa.Engine) -> None:
        self.catalog = catalog

    def password_hash(self, user: str) -> str | None:
        return stored.password_hash(self.catalog, user)

    def account_exists(self, user: str) -> bool:
        return stored.account_exists(self.catalog, user)

    def set_password_hash(self, user: str, password_hash: str) -> None:
        stored.set_password_hash(self.catalog, user, password_hash)

    def session_secret(self) -> str:
        return stored.session_secret(self.catalog, CONSOLE_USER)


def prepare_account(catalog: sa.Engine, *, environ: dict[str, str] | None = None) -> bool:
    """Create the account on first start and apply ``COHORTSYNC_CONSOLE_PASSWORD``.

    Returns whether the account has a password now; without one, the caller
    prints a one-time login link.

    Raises:
        ConfigError: the variable is set to a password that cannot be used.
    """
    environ = dict(os.environ) if environ is None else environ
    stored.ensure_account(catalog, CONSOLE_USER)
    password = environ.get(PASSWORD_ENV)
    if password is None:
        return stored.password_hash(catalog, CONSOLE_USER) is not None
    problem = password_problem(password)
    if problem:
        raise ConfigError(
            f"{PASSWORD_ENV} cannot be used as the console's password: {problem}",
            hint=f"set {PASSWORD_ENV} to another password, or unset it for a login link",
        )
    current = stored.password_hash(catalog, CONSOLE_USER)
    if current is None or not verify_password(current, password):
        stored.set_password_hash(catalog, CONSOLE_USER, hash_password(password))
    return True
