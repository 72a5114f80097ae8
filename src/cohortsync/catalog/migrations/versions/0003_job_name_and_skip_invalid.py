"""Runs found by their job through an index; activations may skip invalid identifiers.

Revision ID: 0003
Revises: 0002

Two columns:

* ``runs.job_name``: the saved job a run belongs to (``query:NAME``,
  ``activation:NAME``; null for an ad-hoc ``cohortsync export``), indexed
  with the start time. Earlier releases kept it only inside the run's JSON
  (its ``"job"`` key), so finding a job's latest run meant decoding the
  latest runs in Python and missed a job whose last run was older than the
  runs scanned. It is backfilled from that JSON; a run whose JSON names no
  job keeps null, as an ad-hoc run does.
* ``audience_activations.skip_invalid``: whether an activation's runs drop
  invalid identifiers instead of failing, false for every existing
  activation (their behaviour until now).

Tables are frozen here, not imported from the live modules. On SQLite both
columns are added in batch mode (SQLite adds a NOT NULL column only with a
default, which this one has); PostgreSQL alters in place. The backfill reads
the JSON in Python, the same on both databases. Downgrade is not supported.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

frozen = sa.MetaData()
runs = sa.Table(
    "runs",
    frozen,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("job_name", sa.String, nullable=True),
)


def job_name(stored: str) -> str | None:
    """The ``"job"`` key of a run's stored JSON, when it is a job's name."""
    data: Any = json.loads(stored)
    name = data.get("job") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("job_name", sa.String, nullable=True))
        batch.create_index("ix_runs_job_name_started_at", ["job_name", "started_at"])
    with op.batch_alter_table("audience_activations") as batch:
        batch.add_column(
            sa.Column("skip_invalid", sa.Boolean, nullable=False, server_default=sa.false())
        )

    bind = op.get_bind()
    stored = bind.execute(sa.select(runs.c.id, runs.c.job)).all()
    named = [
        {"run_id": row.id, "name": name}
        for row in stored
        if (name := job_name(row.job)) is not None
    ]
    if named:
        bind.execute(
            runs.update()
            .where(runs.c.id == sa.bindparam("run_id"))
            .values(job_name=sa.bindparam("name")),
            named,
        )


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0003")
