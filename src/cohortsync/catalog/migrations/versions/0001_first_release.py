"""The catalog as the first versioned release keeps it.

Revision ID: 0001
Revises:

The tables are frozen here (not imported from the live modules) so that this
revision means the same schema forever. Catalogs of earlier releases were
made by ``create_all``, which creates only missing tables: creating the
missing ones with ``checkfirst`` brings any of them to this revision, and an
empty one too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

frozen = sa.MetaData()
Stamp = sa.DateTime(timezone=True)

sa.Table(
    "auths",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False),
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    sa.Column("key_hint", sa.String, nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
)
sa.Table(
    "runs",
    frozen,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("cohort_key", sa.String, nullable=False, index=True),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("key_hash", sa.String, nullable=False),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", Stamp, nullable=False),
    sa.Column("finished_at", Stamp),
    sa.Column("report", sa.Text),
    sa.Column("error", sa.Text),
)
sa.Table(
    "run_batches",
    frozen,
    sa.Column("run_id", sa.String, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("batch_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
)
sa.Table(
    "saved_queries",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("warehouse_url", sa.String, nullable=True),
    sa.Column("export", sa.Text, nullable=True),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)
sa.Table(
    "audience_parents",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("table_name", sa.String, nullable=False),
    sa.Column("key_column", sa.String, nullable=False),
    sa.Column("warehouse_url", sa.String, nullable=True),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)
sa.Table(
    "audience_segments",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column(
        "parent",
        sa.String,
        sa.ForeignKey("audience_parents.name", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)
sa.Table(
    "audience_activations",
    frozen,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column(
        "segment",
        sa.String,
        sa.ForeignKey("audience_segments.name", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("auth_name", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("cohort_name", sa.String, nullable=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("alias_column", sa.String, nullable=True),
    sa.Column("threads", sa.Integer, nullable=False),
    sa.Column("mapping", sa.JSON, nullable=False),
    sa.Column("cast_to_string", sa.Boolean, nullable=False),
    sa.Column("description", sa.String, nullable=True),
    sa.Column("schedule_cron", sa.String, nullable=True),
    sa.Column("schedule_timezone", sa.String, nullable=False),
    sa.Column("mirror_allow_empty", sa.Boolean, nullable=False),
    sa.Column("mirror_max_remove_pct", sa.Float, nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)
sa.Table(
    "schedules",
    frozen,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("cron", sa.String, nullable=False),
    sa.Column("timezone", sa.String, nullable=False),
    sa.Column("anchor", sa.DateTime, nullable=False),
    sa.Column("last_slot", sa.DateTime, nullable=True),
    sa.Column("last_run_id", sa.String, nullable=True),
    sa.Column("last_status", sa.String, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_finished_at", sa.DateTime, nullable=True),
)
sa.Table(
    "job_leases",
    frozen,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)


def upgrade() -> None:
    frozen.create_all(op.get_bind(), checkfirst=True)
