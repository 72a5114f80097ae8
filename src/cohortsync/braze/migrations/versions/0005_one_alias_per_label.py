"""A user has at most one alias per label, as in Braze.

Revision ID: 0005
Revises: 0004

Braze gives a user one alias of each label: a second ``email`` alias is
refused. Earlier releases left that rule to the writers, which lock the
user's row and skip a label the user holds; the store now enforces it with
the unique index ``uq_braze_user_aliases_user_label`` on
``braze_user_aliases (user_id, alias_label)``.

A store written before the rule may hold a user with two aliases of one
label (a ``users load`` file could give them). Before the index is created,
each such user keeps one alias of the label and the others are deleted; no
user, cohort member or other identifier is removed. The alias table is a
SQLite ``WITHOUT ROWID`` table without an insertion counter, so the order
in which aliases were added is not recorded: the alias kept is the one with
the lowest ``alias_name`` (the database's string order), which makes the
upgrade give the same result on every copy of a store.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "uq_braze_user_aliases_user_label"

frozen = sa.MetaData()
aliases = sa.Table(
    "braze_user_aliases",
    frozen,
    sa.Column("workspace_id", sa.Integer),
    sa.Column("alias_name", sa.String),
    sa.Column("alias_label", sa.String),
    sa.Column("user_id", sa.BigInteger),
)


def upgrade() -> None:
    bind = op.get_bind()
    _delete_second_aliases(bind)
    op.create_index(INDEX, "braze_user_aliases", ["user_id", "alias_label"], unique=True)


def _delete_second_aliases(bind: sa.Connection) -> None:
    """Delete every alias whose user holds an alias of its label with a lower name."""
    kept = aliases.alias("kept")
    lower_of_label = (
        sa.select(sa.literal(1))
        .where(
            kept.c.user_id == aliases.c.user_id,
            kept.c.alias_label == aliases.c.alias_label,
            kept.c.alias_name < aliases.c.alias_name,
        )
        .exists()
    )
    bind.execute(sa.delete(aliases).where(lower_of_label))
