"""Each saved authentication says how exports through it deliver.

Revision ID: 0006
Revises: 0005

One column, ``auths.type``: ``partner-cohort`` (the cohort import API, the
key a data import key) or ``rest-attribute`` (a custom attribute through
``/users/track``, the key a REST API key). Every authentication saved by an
earlier release held a data import key, so every existing row is
``partner-cohort`` (the column's server default) and exports through it
deliver as before.

On SQLite the column is added in batch mode (a NOT NULL column needs its
default there); PostgreSQL alters in place. Downgrade is not supported.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auths") as batch:
        batch.add_column(
            sa.Column("type", sa.String, nullable=False, server_default="partner-cohort")
        )


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0006")
