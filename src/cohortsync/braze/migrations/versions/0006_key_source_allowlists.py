"""Data import keys and REST API keys may be restricted to source addresses.

Revision ID: 0006
Revises: 0005

Two nullable columns hold each key's source allowlist, a JSON array of
IPv4 / IPv6 networks (``["10.0.0.0/8", "127.0.0.1/32"]``):
``braze_data_import_keys.allowed_sources`` and
``braze_workspaces.rest_api_key_sources``. Every existing key gets ``NULL``,
which accepts any source: an upgraded store answers exactly as before until
an administrator restricts a key. No row changes otherwise.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("braze_data_import_keys", "allowed_sources"),
    ("braze_workspaces", "rest_api_key_sources"),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, column in COLUMNS:
        present = {found["name"] for found in inspector.get_columns(table)}
        if column not in present:
            # A nullable column without a default: SQLite adds it in place, no table copy.
            op.add_column(table, sa.Column(column, sa.Text, nullable=True))
