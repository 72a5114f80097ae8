"""Counters of identifiers received and matched move onto the cohort row.

Revision ID: 0002
Revises: 0001

Each import used to update one ``braze_cohort_counts`` row per identifier
kind; the counters now live in six columns of ``braze_cohorts``, updated
with the cohort itself. Their values are carried over exactly (the old
``dropped`` count is received minus matched, so nothing is lost). The index
on ``braze_cohort_members.user_id`` goes too: it doubled the cost of every
import and no query uses it.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KINDS = ("external_id", "alias", "device_id")
COUNTS = ("received", "matched")

# The SQLite layout of 0002, frozen: (table, columns, what ends the CREATE TABLE, indexes).
SQLITE_TABLES = (
    (
        "braze_users",
        "id INTEGER NOT NULL, workspace_id INTEGER NOT NULL, external_id VARCHAR, "
        "attributes TEXT, created_at VARCHAR NOT NULL, PRIMARY KEY (id), "
        "CONSTRAINT uq_braze_users_external_id UNIQUE (workspace_id, external_id)",
        "",
        (),
    ),
    (
        "braze_user_aliases",
        "workspace_id INTEGER NOT NULL, alias_name VARCHAR NOT NULL, "
        "alias_label VARCHAR NOT NULL, user_id BIGINT NOT NULL, "
        "PRIMARY KEY (workspace_id, alias_name, alias_label)",
        " WITHOUT ROWID",
        ("CREATE INDEX ix_braze_user_aliases_user_id ON braze_user_aliases (user_id)",),
    ),
    (
        "braze_user_devices",
        "workspace_id INTEGER NOT NULL, device_id VARCHAR NOT NULL, user_id BIGINT NOT NULL, "
        "PRIMARY KEY (workspace_id, device_id)",
        " WITHOUT ROWID",
        ("CREATE INDEX ix_braze_user_devices_user_id ON braze_user_devices (user_id)",),
    ),
    (
        "braze_cohort_members",
        "cohort_pk INTEGER NOT NULL, user_id BIGINT NOT NULL, PRIMARY KEY (cohort_pk, user_id)",
        " WITHOUT ROWID",
        (),
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = {column["name"] for column in inspector.get_columns("braze_cohorts")}
    missing = [
        f"{kind}_{count}" for kind in KINDS for count in COUNTS if f"{kind}_{count}" not in present
    ]
    if missing:
        with op.batch_alter_table("braze_cohorts") as batch:
            for name in missing:
                batch.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    tables = set(inspector.get_table_names())
    if "braze_cohort_counts" in tables:
        for kind in KINDS:
            for count in COUNTS:
                op.execute(
                    sa.text(
                        f"UPDATE braze_cohorts SET {kind}_{count} = COALESCE(("
                        f"SELECT c.{count} FROM braze_cohort_counts c "
                        "WHERE c.cohort_pk = braze_cohorts.id AND c.kind = :kind"
                        f"), {kind}_{count})"
                    ).bindparams(kind=kind)
                )
        op.drop_table("braze_cohort_counts")
    indexes = {index["name"] for index in inspector.get_indexes("braze_cohort_members")}
    if "ix_braze_cohort_members_user_id" in indexes:
        op.drop_index("ix_braze_cohort_members_user_id", table_name="braze_cohort_members")
    if bind.dialect.name == "sqlite":
        for table, columns, options, table_indexes in SQLITE_TABLES:
            _sqlite_relayout(bind, table, columns, options, table_indexes)


def _sqlite_relayout(
    bind: sa.Connection, table: str, columns: str, options: str, indexes: tuple[str, ...]
) -> None:
    """Copy ``table`` into its 0002 layout, unless it has it already."""
    wanted = f"CREATE TABLE {table} ({columns}){options}"
    current = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if _layout(current) == _layout(wanted):
        return
    names = [row[1] for row in bind.exec_driver_sql(f"PRAGMA table_info({table})")]
    listed = ", ".join(names)
    bind.exec_driver_sql(f"CREATE TABLE {table}__0002 ({columns}){options}")
    bind.exec_driver_sql(f"INSERT INTO {table}__0002 ({listed}) SELECT {listed} FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE {table}__0002 RENAME TO {table}")
    for index in indexes:
        bind.exec_driver_sql(index)


def _layout(sql: str) -> tuple[bool, bool]:
    """What matters of a CREATE TABLE here: a rowid id, and WITHOUT ROWID."""
    text = " ".join(sql.upper().split())
    return (re.search(r"[(,]\s*ID INTEGER\b", text) is not None, "WITHOUT ROWID" in text)
