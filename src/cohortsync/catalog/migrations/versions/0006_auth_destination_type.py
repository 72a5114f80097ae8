"""Each saved authentication says how exports through it deliver.

Revision ID: 0006
Revises: 0005

``auths.type``: ``partner-cohort`` (the cohort import API, the
key a data import key) or ``rest-attribute`` (a custom attribute through
``/users/track``, the key a REST API key). Every authentication saved by an
earlier release held a data import key, so every existing row is
``partner-cohort`` (the column's server default) and exports through it
deliver as before.

``audience_activations.attribute_mode`` and ``.attribute``: the custom
attribute an activation through a ``rest-attribute`` authentication sets
(``array``, the attribute ``cohorts`` unless named; or ``boolean``). Every
existing activation is ``array`` with no attribute named, the defaults; a
saved query keeps the same two settings in its export's JSON, where an
absent key is the default.

On SQLite the columns are added in batch mode (a NOT NULL column needs its
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
    with op.batch_alter_table("audience_activations") as batch:
        batch.add_column(
            sa.Column("attribute_mode", sa.String, nullable=False, server_default="array")
        )
        batch.add_column(sa.Column("attribute", sa.String, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0006")
