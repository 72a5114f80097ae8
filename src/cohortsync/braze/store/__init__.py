"""The receiving service's store: the only place that speaks SQL (SQLAlchemy Core).

- :mod:`.tables`: the schema, one for SQLite and PostgreSQL;
- :mod:`.database`: :class:`Store`, its engines and each dialect's write discipline;
- :mod:`.opening`: :func:`open_store`, schema versions and upgrades;
- the queries, by concern: :mod:`.account_queries` (workspaces, partners,
  keys), :mod:`.cohort_queries`, :mod:`.import_queries` (the hot path of
  cohort imports), :mod:`.user_queries`, :mod:`.track_queries` (the batched
  statements of ``/users/track``), :mod:`.identity_queries` (alias, identify,
  delete), :mod:`.profile_queries` (one profile for the dashboard),
  :mod:`.segment_queries`, :mod:`.campaign_queries` (campaigns and their
  outbox) and :mod:`.dashboard_queries`. (The table objects keep the plain
  names: ``store.users`` is the table.)

Callers above the store pass a connection from :meth:`Store.read` or
:meth:`Store.write` to these queries, so that they choose the transaction.
"""

from cohortsync.braze.store.database import Store, StoreBusy, is_schema_error
from cohortsync.braze.store.opening import STORE_SCHEMA, open_store, store_status, upgrade_store
from cohortsync.braze.store.tables import (
    IDENTIFIER_KINDS,
    MAX_IDENTIFIER_LENGTH,
    Alias,
    campaign_launches,
    campaign_sends,
    campaign_steps,
    campaigns,
    cohort_changes,
    cohort_members,
    cohorts,
    dashboard_login_links,
    dashboard_memberships,
    dashboard_secrets,
    dashboard_users,
    data_import_keys,
    id_counters,
    partner_api_keys,
    partners,
    segments,
    user_aliases,
    user_devices,
    users,
    utc_now,
    workspace_partners,
    workspaces,
)

__all__ = [
    "IDENTIFIER_KINDS",
    "MAX_IDENTIFIER_LENGTH",
    "STORE_SCHEMA",
    "Alias",
    "Store",
    "StoreBusy",
    "campaign_launches",
    "campaign_sends",
    "campaign_steps",
    "campaigns",
    "cohort_changes",
    "cohort_members",
    "cohorts",
    "dashboard_login_links",
    "dashboard_memberships",
    "dashboard_secrets",
    "dashboard_users",
    "data_import_keys",
    "id_counters",
    "is_schema_error",
    "open_store",
    "partner_api_keys",
    "partners",
    "segments",
    "store_status",
    "upgrade_store",
    "user_aliases",
    "user_devices",
    "users",
    "utc_now",
    "workspace_partners",
    "workspaces",
]
