"""The run history keyed by the one cohort identity that locks and snapshots use.

Revision ID: 0002
Revises: 0001

Earlier releases computed a run's ``cohort_key`` by dropping the endpoint's
trailing slash only, while the cohort lock and the snapshots also lower-cased
its scheme and host. ``https://REST.iad-01.braze.com`` and
``https://rest.iad-01.braze.com`` therefore shared one lock and one snapshot
but had two run histories, and an export through one spelling missed the
abandoned runs of the other. This revision recomputes every stored key with
the rules of :mod:`cohortsync.identity` (frozen here: scheme and host
lower-cased, default port dropped, trailing slash dropped, partner and cohort
id exact) from the columns each run already holds (its endpoint as written,
partner, cohort id and key fingerprint).

A data migration only: no table changes, so it needs no batch mode on
SQLite, and it is plain UPDATEs, valid on any database (the catalog is a
SQLite file today). Downgrade is not supported: the old keys of two spellings
cannot be told apart again.
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_DEFAULT_PORTS = {"http": "80", "https": "443"}

frozen = sa.MetaData()
runs = sa.Table(
    "runs",
    frozen,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("cohort_key", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("partner", sa.String, nullable=False),
    sa.Column("cohort_id", sa.String, nullable=False),
    sa.Column("key_hash", sa.String, nullable=False),
)


def _normalize_endpoint(endpoint: str) -> str:
    text = endpoint.strip()
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return text.rstrip("/").lower()
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    host, colon, port = netloc.rpartition(":")
    default = _DEFAULT_PORTS.get(scheme)
    if colon and (port == "" or (port.isdigit() and port.lstrip("0") == default)):
        netloc = host
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def cohort_key(endpoint: str, partner: str, cohort_id: str, key_hash: str) -> str:
    return f"{_normalize_endpoint(endpoint)}|{partner}|{cohort_id}|{key_hash}"


def upgrade() -> None:
    bind = op.get_bind()
    stored = bind.execute(
        sa.select(
            runs.c.id, runs.c.cohort_key, runs.c.endpoint, runs.c.partner, runs.c.cohort_id
        ).add_columns(runs.c.key_hash)
    ).all()
    for row in stored:
        key = cohort_key(row.endpoint, row.partner, row.cohort_id, row.key_hash)
        if key != row.cohort_key:
            bind.execute(runs.update().where(runs.c.id == row.id).values(cohort_key=key))


def downgrade() -> None:
    raise NotImplementedError("the catalog cannot go back before revision 0002")
