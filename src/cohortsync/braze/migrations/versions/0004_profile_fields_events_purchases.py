"""Braze's user profile fields apart from custom attributes; events and purchases.

Revision ID: 0004
Revises: 0003

``/users/track`` now keeps Braze's user profile fields (``first_name``,
``email``, ``country``, ...) apart from custom attributes, as Braze does:

- ``braze_users.email`` and ``braze_users.phone``, indexed per workspace
  (profiles are addressed by them), and ``braze_users.standard``, a JSON
  object of the other profile fields;
- ``braze_user_events`` and ``braze_user_purchases``: the custom events and
  purchases ``/users/track`` records.

Earlier releases stored every attribute in ``braze_users.attributes``; the
profile fields among them move to their new place, so a campaign rendering
``{{${first_name}}}`` renders the same text after the upgrade. The list of
fields is frozen here so that this revision means the same thing forever.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Braze's user profile fields as of this revision (email and phone have columns).
PROFILE_FIELDS = frozenset(
    {
        "country", "current_location", "date_of_first_session", "date_of_last_session", "dob",
        "email_subscribe", "email_open_tracking_disabled", "email_click_tracking_disabled",
        "facebook", "first_name", "gender", "home_city", "image_url", "language", "last_name",
        "marked_email_as_spam_at", "push_subscribe", "push_tokens", "subscription_groups",
        "time_zone", "twitter",
    }
)  # fmt: skip
COLUMNS = ("email", "phone")
BATCH = 5_000

frozen = sa.MetaData()
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NEW_TABLES = (
    sa.Table(
        "braze_user_events",
        frozen,
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("time", sa.String, nullable=False),
        sa.Column("app_id", sa.String, nullable=True),
        sa.Column("properties", sa.Text, nullable=True),
        sa.Index("ix_braze_user_events_user_id_id", "user_id", "id"),
    ),
    sa.Table(
        "braze_user_purchases",
        frozen,
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("product_id", sa.String, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("time", sa.String, nullable=False),
        sa.Column("app_id", sa.String, nullable=True),
        sa.Column("properties", sa.Text, nullable=True),
        sa.Index("ix_braze_user_purchases_user_id_id", "user_id", "id"),
    ),
)
users = sa.Table(
    "braze_users",
    frozen,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("attributes", sa.Text),
    sa.Column("email", sa.String),
    sa.Column("phone", sa.String),
    sa.Column("standard", sa.Text),
)


def upgrade() -> None:
    bind = op.get_bind()
    for name in (*COLUMNS, "standard"):
        kind = sa.Text() if name == "standard" else sa.String()
        op.add_column("braze_users", sa.Column(name, kind, nullable=True))
    op.create_index("ix_braze_users_email", "braze_users", ["workspace_id", "email"])
    op.create_index("ix_braze_users_phone", "braze_users", ["workspace_id", "phone"])
    for table in NEW_TABLES:
        table.create(bind, checkfirst=True)
    _move_profile_fields(bind)


def _move_profile_fields(bind: sa.Connection) -> None:
    """Move profile fields out of each user's custom attributes, by batches of ids."""
    after = -1
    while True:
        rows = bind.execute(
            sa.select(users.c.id, users.c.attributes)
            .where(users.c.id > after, users.c.attributes.is_not(None))
            .order_by(users.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        changes = []
        for row in rows:
            custom = json.loads(row.attributes)
            if not isinstance(custom, dict):
                continue
            moved = {k: custom.pop(k) for k in sorted(PROFILE_FIELDS | set(COLUMNS)) if k in custom}
            if not moved:
                continue
            standard = {k: v for k, v in moved.items() if k not in COLUMNS and v is not None}
            changes.append(
                {
                    "uid": row.id,
                    "attributes": json.dumps(custom) if custom else None,
                    "standard": json.dumps(standard) if standard else None,
                    **{c: moved[c] if isinstance(moved.get(c), str) else None for c in COLUMNS},
                }
            )
        if changes:
            bind.execute(
                sa.update(users)
                .where(users.c.id == sa.bindparam("uid"))
                .values(
                    attributes=sa.bindparam("attributes"),
                    standard=sa.bindparam("standard"),
                    email=sa.bindparam("email"),
                    phone=sa.bindparam("phone"),
                ),
                changes,
            )
