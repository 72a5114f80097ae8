"""``upsert_auth``: the one writer of the auths table for ``cohortsync apply``."""

from __future__ import annotations

from pathlib import Path

from cohortsync.catalog.auths import auth_fields, get_auth, upsert_auth
from cohortsync.catalog.db import open_catalog
from cohortsync.definitions import Authentication
from cohortsync.settings import Settings


def test_upsert_creates_then_reports_changes(home: Path) -> None:
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        saved = Authentication(
            name="prod", endpoint="https://rest.iad-01.braze.com", data_import_key="import-key-0001"
        )
        assert auth_fields(catalog, settings, "prod") is None
        assert upsert_auth(catalog, settings, saved) is True
        created = get_auth(catalog, "prod")
        assert created.masked_key == "****0001"
        assert upsert_auth(catalog, settings, saved) is False
        assert (
            upsert_auth(
                catalog, settings, saved.model_copy(update={"data_import_key": "import-key-0002"})
            )
            is True
        )
        assert auth_fields(catalog, settings, "prod") == {
            "endpoint": "https://rest.iad-01.braze.com",
            "partner": created.partner,
            "type": "partner-cohort",
            "data_import_key": "import-key-0002",
        }
        updated = get_auth(catalog, "prod")
        assert (updated.masked_key, updated.created_at) == ("****0002", created.created_at)
        as_rest = saved.model_copy(update={"data_import_key": "rest-key-0003"})
        as_rest = as_rest.model_copy(update={"type": "rest-attribute"})
        assert upsert_auth(catalog, settings, as_rest) is True
        assert get_auth(catalog, "prod").type == "rest-attribute"
        assert upsert_auth(catalog, settings, as_rest) is False
    finally:
        catalog.dispose()
