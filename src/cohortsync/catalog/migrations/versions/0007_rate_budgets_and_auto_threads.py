"""One rate budget per workspace, and activations that choose their own concurrency.

Revision ID: 0007
Revises: 0006

``rate_budgets``: one row per Braze workspace (its normalised endpoint and
the fingerprint of its key), shared by every run of the home: the limit its
answers announced, the window's length, a pause every run honours, and the
instant up to which send times are handed out
(:mod:`cohortsync.catalog.rate_budgets`). It starts empty; the first answer
with rate-limit headers fills a workspace's row.

``audience_activations.threads`` holds ``auto`` (the run grows and shrinks
its requests in flight to what the workspace allows) or a count, so the
column becomes text. Every existing activation keeps the count it was saved
with, written as text (``4``), and runs as before.

On SQLite the column is retyped in batch mode (the table is copied);
PostgreSQL alters it in place. Downgrade is not supported.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("workspace", sa.String, primary_key=True),
        sa.Column("request_limit", sa.Integer, nullable=True),
        sa.Column("window_s", sa.Float, nullable=True),
        sa.Column("remaining", sa.Integer, nullable=True),
        sa.Column("reset_at", sa.Float, nullable=True),
        sa.Column("next_slot", sa.Float, nullable=False),
        sa.Column("paused_until", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("audience_activations") as batch:
        batch.alter_column(
            "threads",
            existing_type=sa.Integer,
            type_=sa.String,
            existing_nullable=False,
            postgresql_using="threads::text",
        )


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0007")
