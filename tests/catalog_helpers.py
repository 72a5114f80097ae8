"""Catalog set-up shared by the suites: a saved authentication in the test's home."""

from __future__ import annotations

from cohortsync.catalog.auths import save_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Authentication, validated
from cohortsync.settings import Settings


def save_home_auth(name: str, endpoint: str, data_import_key: str) -> str:
    """Save an authentication in ``$COHORTSYNC_HOME``'s catalog, without contacting it."""
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        fields = {"name": name, "endpoint": endpoint, "data_import_key": data_import_key}
        save_auth(catalog, settings, validated(Authentication, fields))
    finally:
        catalog.dispose()
    return name
