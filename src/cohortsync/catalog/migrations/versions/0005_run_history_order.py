"""The run history read in its order, and by cohort, through indexes.

Revision ID: 0005
Revises: 0004

Two indexes on ``runs``:

* ``ix_runs_started_at_id`` (``started_at``, ``id``): the history's order,
  latest first. Without it every page of ``cohortsync runs list`` and of the
  console's Runs sorted the whole history (every run's JSON included) to
  show 50 rows: about 140 ms at 10,000 runs, growing with each run.
* ``ix_runs_cohort_id_started_at`` (``cohort_id``, ``started_at``): one
  cohort's runs (``runs list --cohort-id``, the console's cohort filter) and
  the list of cohorts to filter by, read without scanning every run.

Only indexes: no row changes, on SQLite and PostgreSQL alike. Downgrade is
not supported.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_started_at_id", "runs", ["started_at", "id"])
    op.create_index("ix_runs_cohort_id_started_at", "runs", ["cohort_id", "started_at"])


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0005")
