"""Alerts of saved queries and activations, and the record of their deliveries.

Revision ID: 0008
Revises: 0007

``saved_queries.alerts`` and ``audience_activations.alerts``: the job's
alerts (:class:`cohortsync.definitions.Alerts`: a webhook, its format and
the triggers) as one JSON document, NULL for none. Every existing query and
activation has none and runs as before.

``run_alerts``: one row per alert delivery of a run (the triggers with their
numbers, the webhook's origin, attempts, final status, the HTTP status or
the error), deleted with its run. It starts empty.

On SQLite the columns are added in batch mode; PostgreSQL alters in place.
Downgrade is not supported.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("saved_queries") as batch:
        batch.add_column(sa.Column("alerts", sa.Text, nullable=True))
    with op.batch_alter_table("audience_activations") as batch:
        batch.add_column(sa.Column("alerts", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "run_alerts",
        sa.Column(
            "run_id", sa.String, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("triggers", sa.Text, nullable=False),
        sa.Column("destination", sa.String, nullable=False),
        sa.Column("format", sa.String, nullable=False),
        sa.Column("held", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0008")
