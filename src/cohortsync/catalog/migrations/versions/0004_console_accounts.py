"""The console's accounts.

Revision ID: 0004
Revises: 0003

A new table, ``console_accounts``: one row per account of the web console,
with its argon2 password hash (null until a password is chosen) and the
secret its session cookies are signed with. Earlier releases had no console,
so nothing is copied; the console creates its account on first start.

The table is frozen here, not imported from the live module. Downgrade is not
supported.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_accounts",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("password_hash", sa.String, nullable=True),
        sa.Column("session_secret", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0004")
