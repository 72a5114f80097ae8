"""The dashboard's users, the cohorts' change history, and campaigns with their outbox.

Revision ID: 0003
Revises: 0002

Only new tables: nothing existing changes, so a store keeps every row. The
tables are frozen here (not imported from :mod:`cohortsync.braze.store`), so
this revision means the same schema forever.

- ``braze_dashboard_users``, ``braze_dashboard_memberships``: who may log in
  to the dashboard, and which workspaces each one sees;
- ``braze_dashboard_login_links``: the one-time links ``braze user create``
  prints (only a digest of each token);
- ``braze_dashboard_secrets``: the key signing the dashboard's sessions;
- ``braze_cohort_changes``: per import request, the members added and removed
  and the fingerprint of the key that sent it;
- ``braze_campaigns``, ``braze_campaign_steps``, ``braze_campaign_launches``,
  ``braze_campaign_sends``: campaigns and Canvases, their launches, and the
  outbox of rendered messages.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

frozen = sa.MetaData()

# Stand-ins for the tables the new ones refer to; they exist since 0001.
sa.Table("braze_workspaces", frozen, sa.Column("id", sa.Integer, primary_key=True))
sa.Table("braze_cohorts", frozen, sa.Column("id", sa.Integer, primary_key=True))

NEW_TABLES = (
    sa.Table(
        "braze_dashboard_users",
        frozen,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String, nullable=False, unique=True),
        sa.Column("password_hash", sa.String, nullable=True),
        sa.Column("created_at", sa.String, nullable=False),
    ),
    sa.Table(
        "braze_dashboard_memberships",
        frozen,
        sa.Column("user_id", sa.ForeignKey("braze_dashboard_users.id"), primary_key=True),
        sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), primary_key=True),
    ),
    sa.Table(
        "braze_dashboard_login_links",
        frozen,
        sa.Column("token_digest", sa.String, primary_key=True),
        sa.Column("user_id", sa.ForeignKey("braze_dashboard_users.id"), nullable=False),
        sa.Column("expires_at", sa.String, nullable=False),
    ),
    sa.Table(
        "braze_dashboard_secrets",
        frozen,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
    ),
    sa.Table(
        "braze_cohort_changes",
        frozen,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cohort_pk", sa.ForeignKey("braze_cohorts.id"), nullable=False),
        sa.Column("at", sa.String, nullable=False),
        sa.Column("key_fingerprint", sa.String, nullable=False),
        sa.Column("added", sa.BigInteger, nullable=False),
        sa.Column("removed", sa.BigInteger, nullable=False),
        sa.Index("ix_braze_cohort_changes_cohort_pk_id", "cohort_pk", "id"),
    ),
    sa.Table(
        "braze_campaigns",
        frozen,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("include_segments", sa.Text, nullable=False),
        sa.Column("exclude_segments", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("send_at", sa.String, nullable=True),
        sa.Column("created_at", sa.String, nullable=False),
        sa.Column("updated_at", sa.String, nullable=False),
        sa.UniqueConstraint("workspace_id", "kind", "name", name="uq_braze_campaigns_name"),
    ),
    sa.Table(
        "braze_campaign_steps",
        frozen,
        sa.Column("campaign_id", sa.ForeignKey("braze_campaigns.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("segment_id", sa.String, nullable=True),
    ),
    sa.Table(
        "braze_campaign_launches",
        frozen,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.ForeignKey("braze_campaigns.id"), nullable=False, index=True),
        sa.Column("trigger", sa.String, nullable=False),
        sa.Column("started_at", sa.String, nullable=False),
        sa.Column("finished_at", sa.String, nullable=True),
        sa.Column("messages", sa.BigInteger, nullable=False, default=0),
    ),
    sa.Table(
        "braze_campaign_sends",
        frozen,
        sa.Column("launch_id", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("external_id", sa.String, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in NEW_TABLES:
        table.create(bind, checkfirst=True)
