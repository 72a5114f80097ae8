"""The Braze store as its first release kept it, counters in their own table.

Revision ID: 0001
Revises:

Frozen here (not imported from :mod:`cohortsync.braze.store`) so that this
revision means the same schema forever. Stores of releases before versions
were made by ``create_all``, which creates only missing tables; creating the
missing ones with ``checkfirst`` brings an empty store to this revision too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

frozen = sa.MetaData()

sa.Table(
    "braze_workspaces",
    frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("rest_api_key", sa.String, nullable=False, unique=True),
    sa.Column("created_at", sa.String, nullable=False),
)
sa.Table(
    "braze_partners",
    frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("filter_name", sa.String, nullable=False),
)
sa.Table(
    "braze_partner_api_keys",
    frozen,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("region", sa.String, nullable=False),
)
sa.Table(
    "braze_workspace_partners",
    frozen,
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), primary_key=True),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), primary_key=True),
)
sa.Table(
    "braze_data_import_keys",
    frozen,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("invalidated_at", sa.String, nullable=True),
)
sa.Table(
    "braze_id_counters",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("next_value", sa.BigInteger, nullable=False),
)
sa.Table(
    "braze_users",
    frozen,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("external_id", sa.String, nullable=True),
    sa.Column("attributes", sa.Text, nullable=True),
    sa.Column("created_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "external_id", name="uq_braze_users_external_id"),
)
sa.Table(
    "braze_user_aliases",
    frozen,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("alias_name", sa.String, primary_key=True),
    sa.Column("alias_label", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
)
sa.Table(
    "braze_user_devices",
    frozen,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("device_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
)
sa.Table(
    "braze_cohorts",
    frozen,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("partner_id", sa.ForeignKey("braze_partners.id"), nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False),
    sa.UniqueConstraint("workspace_id", "cohort_id", name="uq_braze_cohorts_cohort_id"),
)
sa.Table(
    "braze_cohort_members",
    frozen,
    sa.Column("cohort_pk", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, index=True),
)
sa.Table(
    "braze_cohort_counts",
    frozen,
    sa.Column("cohort_pk", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("matched", sa.BigInteger, nullable=False),
    sa.Column("dropped", sa.BigInteger, nullable=False),
)
sa.Table(
    "braze_segments",
    frozen,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("braze_workspaces.id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("filter", sa.Text, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.UniqueConstraint("workspace_id", "name", name="uq_braze_segments_name"),
)


def upgrade() -> None:
    frozen.create_all(op.get_bind(), checkfirst=True)
