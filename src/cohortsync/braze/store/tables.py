"""The store's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

The Alembic revisions in ``migrations/`` create and change these tables; the
definitions here are what the code expects the newest revision to have.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()

VERSION_TABLE = "braze_store_version"
IDENTIFIER_KINDS = ("external_id", "alias", "device_id")
"""The kinds of identifier a partner sends, in the order every report lists them."""
COUNTER_COLUMNS = tuple(
    f"{kind}_{count}" for kind in IDENTIFIER_KINDS for count in ("received", "matched")
)

# Identifier strings are bounded so that every one fits a PostgreSQL btree entry.
MAX_IDENTIFIER_LENGTH = 512

workspaces = sa.Table(
    "braze_workspaces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("rest_api_key", sa.String, nullable=False, unique=True),
    sa.Column("created_at", sa.String, nullable=False),
    # The REST API key's source allowlist (revision 0006): a JSON array of networks,
    # NULL for any source (see braze/sources.py).
    sa.Column("rest_api_key_sources", sa.Text, nullable=True),
)

partners = sa.Table(
    "braze_partners",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("filter_name", sa.String, nullable=False),
)

partner_api_keys = sa.Table(
    "braze_partner_api_keys",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("region", sa.String, nullable=False),
)

workspace_partners = sa.Table(
    "braze_workspace_partners",
    metadata,
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), primary_key=True),
)

data_import_keys = sa.Table(
    "braze_data_import_keys",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("invalidated_at", sa.String, nullable=True),
    # The key's source allowlist (revision 0006), as for the REST API key's.
    sa.Column("allowed_sources", sa.Text, nullable=True),
)

id_counters = sa.Table(
    "braze_id_counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("next_value", sa.BigInteger, nullable=False),
)

# SQLite: INTEGER PRIMARY KEY makes the id the rowid, so id lookups need no index.
UserId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

users = sa.Table(
    "braze_users",
    metadata,
    sa.Column("id", UserId, primary_key=True, autoincrement=False),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("external_id", sa.String, nullable=True),
    # Custom attributes, a JSON object (segments filter on them).
    sa.Column("attributes", sa.Text, nullable=True),
    sa.Column("created_at", sa.String, nullable=False),
    # Braze's user profile fields (revision 0004): email and phone are columns because
    # /users/track and /users/export/ids address profiles by them; the others are one
    # JSON object (first_name, country, dob, ...), apart from the custom attributes.
    sa.Column("email", sa.String, nullable=True),
    sa.Column("phone", sa.String, nullable=True),
    sa.Column("standard", sa.Text, nullable=True),
    sa.UniqueConstraint("workspace_id", "external_id", name="uq_braze_users_external_id"),
    sa.Index("ix_braze_users_email", "workspace_id", "email"),
    sa.Index("ix_braze_users_phone", "workspace_id", "phone"),
)

user_aliases = sa.Table(
    "braze_user_aliases",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("alias_name", sa.String, primary_key=True),
    sa.Column("alias_label", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    # Braze's rule, kept by the store since revision 0005: one alias per label per user.
    sa.Index("uq_braze_user_aliases_user_label", "user_id", "alias_label", unique=True),
    sqlite_with_rowid=False,
)

user_devices = sa.Table(
    "braze_user_devices",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sqlite_with_rowid=False,
)

cohorts = sa.Table(
    "braze_cohorts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False, default=False),
    # Identifiers received and matched, by kind: the match rate Braze does not show.
    *(sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in COUNTER_COLUMNS),
    sa.UniqueConstraint("workspace_id", "cohort_id", name="uq_braze_cohorts_cohort_id"),
)

cohort_members = sa.Table(
    "braze_cohort_members",
    metadata,
    sa.Column("cohort_pk", sa.Integer, primary_key=True),
    # No index on user_id alone: it would double the cost of every import.
    # Per-user questions go through the workspace's cohorts and this key.
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

segments = sa.Table(
    "braze_segments",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("filter", sa.Text, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "name", name="uq_braze_segments_name"),
)


# -- the dashboard (revision 0003) ---------------------------------------------------------

dashboard_users = sa.Table(
    "braze_dashboard_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String, nullable=False, unique=True),
    # None until the user sets a password through the one-time link.
    sa.Column("password_hash", sa.String, nullable=True),
    sa.Column("created_at", sa.String, nullable=False),
)

dashboard_memberships = sa.Table(
    "braze_dashboard_memberships",
    metadata,
    sa.Column("user_id", sa.ForeignKey("braze_dashboard_users.id"), primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), primary_key=True),
)

dashboard_login_links = sa.Table(
    "braze_dashboard_login_links",
    metadata,
    # Only the SHA-256 of a link's token is kept; a link works once, until it expires.
    sa.Column("token_digest", sa.String, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("braze_dashboard_users.id"), nullable=False),
    sa.Column("expires_at", sa.String, nullable=False),
)

dashboard_secrets = sa.Table(
    "braze_dashboard_secrets",
    metadata,
    # "session": the key that signs the dashboard's session cookies, kept across restarts.
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

cohort_changes = sa.Table(
    "braze_cohort_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("cohort_pk", sa.ForeignKey("braze_cohorts.id"), nullable=False),
    sa.Column("at", sa.String, nullable=False),
    # The first 12 hex digits of the SHA-256 of the data import key that sent the request.
    sa.Column("key_fingerprint", sa.String, nullable=False),
    sa.Column("added", sa.BigInteger, nullable=False),
    sa.Column("removed", sa.BigInteger, nullable=False),
    sa.Index("ix_braze_cohort_changes_cohort_pk_id", "cohort_pk", "id"),
)

campaigns = sa.Table(
    "braze_campaigns",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("kind", sa.String, nullable=False),  # "campaign" or "canvas"
    sa.Column("name", sa.String, nullable=False),
    # JSON arrays of segment ids: the Target Audiences step.
    sa.Column("include_segments", sa.Text, nullable=False),
    sa.Column("exclude_segments", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),  # "draft", "scheduled" or "sent"
    sa.Column("send_at", sa.String, nullable=True),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "kind", "name", name="uq_braze_campaigns_name"),
)

campaign_steps = sa.Table(
    "braze_campaign_steps",
    metadata,
    # A campaign has one step; a Canvas has its steps in order.
    sa.Column("campaign_id", sa.ForeignKey("braze_campaigns.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),  # "email", "push" or "webhook"
    sa.Column("message", sa.Text, nullable=False),
    # From this step on, the audience is narrowed to this segment's members.
    sa.Column("segment_id", sa.String, nullable=True),
)

campaign_launches = sa.Table(
    "braze_campaign_launches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign_id", sa.ForeignKey("braze_campaigns.id"), nullable=False, index=True),
    sa.Column("trigger", sa.String, nullable=False),  # "launch" or "scheduled"
    sa.Column("started_at", sa.String, nullable=False),
    sa.Column("finished_at", sa.String, nullable=True),
    sa.Column("messages", sa.BigInteger, nullable=False, default=0),
)

campaign_sends = sa.Table(
    "braze_campaign_sends",
    metadata,
    # The outbox: one rendered message per user and step of a launch. Nothing is delivered.
    sa.Column("launch_id", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("external_id", sa.String, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)


# -- events and purchases (revision 0004) ----------------------------------------------------

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

user_events = sa.Table(
    "braze_user_events",
    metadata,
    # Custom events recorded by /users/track, one row each, newest last per user.
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("time", sa.String, nullable=False),
    sa.Column("app_id", sa.String, nullable=True),
    sa.Column("properties", sa.Text, nullable=True),
    sa.Index("ix_braze_user_events_user_id_id", "user_id", "id"),
)

user_purchases = sa.Table(
    "braze_user_purchases",
    metadata,
    # Purchases recorded by /users/track; price is the unit price in ``currency``.
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("product_id", sa.String, nullable=False),
    sa.Column("currency", sa.String, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("time", sa.String, nullable=False),
    sa.Column("app_id", sa.String, nullable=True),
    sa.Column("properties", sa.Text, nullable=True),
    sa.Index("ix_braze_user_purchases_user_id_id", "user_id", "id"),
)


def utc_now() -> str:
    """The current time as the ISO-8601 UTC string every table stores."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


Alias = tuple[str, str]
"""A user alias as ``(alias_label, alias_name)``."""
