"""Queries behind one user's profile: the user, its cohorts, the messages it received.

Every query is scoped to a workspace, so an id typed into the dashboard of
one workspace never reveals a user of another.

Two tables have no index on ``user_id`` on purpose (each would slow the hot
path that writes them): the cohort members (keyed by cohort, then user) and
the campaign outbox (keyed by launch, step position, then user). A user's
cohorts are found by probing that key once per cohort of the workspace, and
a user's messages by probing it once per step of the workspace's most
recent launches: never by scanning either table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store.tables import (
    campaign_launches,
    campaign_sends,
    campaign_steps,
    campaigns,
    cohort_members,
    cohorts,
    partners,
    users,
)

PROBES_PER_STATEMENT = 200
"""Outbox keys ``(launch, position, user)`` probed by one statement."""


def user_row(conn: sa.Connection, workspace_id: int, user_id: int) -> Any:
    """The user row (``id``, ``external_id``, ``attributes``, ``created_at``), or None."""
    return conn.execute(
        sa.select(users).where(users.c.id == user_id, users.c.workspace_id == workspace_id)
    ).first()


def user_rows(conn: sa.Connection, workspace_id: int, user_ids: Sequence[int]) -> list[Any]:
    """The rows of those of ``user_ids`` that belong to the workspace, by id."""
    if not user_ids:
        return []
    return list(
        conn.execute(
            sa.select(users)
            .where(users.c.workspace_id == workspace_id, users.c.id.in_(sorted(set(user_ids))))
            .order_by(users.c.id)
        ).all()
    )


def cohorts_of_user(conn: sa.Connection, workspace_id: int, user_id: int) -> list[Any]:
    """``cohort_id``, ``name``, ``partner``, ``partner_display_name`` of the user's cohorts.

    One primary key probe ``(cohort, user)`` per cohort of the workspace.
    """
    return list(
        conn.execute(
            sa.select(
                cohorts.c.cohort_id,
                cohorts.c.name,
                partners.c.name.label("partner"),
                partners.c.display_name.label("partner_display_name"),
            )
            .select_from(cohorts)
            .join(partners, partners.c.id == cohorts.c.partner_id)
            .join(
                cohort_members,
                sa.and_(
                    cohort_members.c.cohort_pk == cohorts.c.id,
                    cohort_members.c.user_id == user_id,
                ),
            )
            .where(cohorts.c.workspace_id == workspace_id)
            .order_by(partners.c.display_name, cohorts.c.name, cohorts.c.cohort_id)
        ).all()
    )


def recent_launches(conn: sa.Connection, workspace_id: int, limit: int) -> list[Any]:
    """The workspace's ``limit`` most recent launches, newest first.

    Each row: ``launch_id``, ``campaign_id``, ``campaign``, ``kind``, ``started_at``.
    """
    return list(
        conn.execute(
            sa.select(
                campaign_launches.c.id.label("launch_id"),
                campaigns.c.id.label("campaign_id"),
                campaigns.c.name.label("campaign"),
                campaigns.c.kind,
                campaign_launches.c.started_at,
            )
            .join(campaigns, campaigns.c.id == campaign_launches.c.campaign_id)
            .where(campaigns.c.workspace_id == workspace_id)
            .order_by(campaign_launches.c.started_at.desc(), campaign_launches.c.id.desc())
            .limit(limit)
        ).all()
    )


def steps_of(conn: sa.Connection, campaign_ids: Sequence[str]) -> list[Any]:
    """``campaign_id``, ``position``, ``name``, ``channel`` of the campaigns' steps."""
    if not campaign_ids:
        return []
    return list(
        conn.execute(
            sa.select(
                campaign_steps.c.campaign_id,
                campaign_steps.c.position,
                campaign_steps.c.name,
                campaign_steps.c.channel,
            )
            .where(campaign_steps.c.campaign_id.in_(sorted(set(campaign_ids))))
            .order_by(campaign_steps.c.campaign_id, campaign_steps.c.position)
        ).all()
    )


def sends_to_user(
    conn: sa.Connection, user_id: int, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], str]:
    """``(launch id, position) -> message`` of the outbox rows of the user among ``keys``.

    Each key is one exact primary key probe ``(launch, position, user)``,
    joined by ``UNION ALL``, so the cost grows with the keys, not the outbox.
    """
    found: dict[tuple[int, int], str] = {}
    for start in range(0, len(keys), PROBES_PER_STATEMENT):
        probes = [
            sa.select(
                campaign_sends.c.launch_id, campaign_sends.c.position, campaign_sends.c.message
            ).where(
                campaign_sends.c.launch_id == launch_id,
                campaign_sends.c.position == position,
                campaign_sends.c.user_id == user_id,
            )
            for launch_id, position in keys[start : start + PROBES_PER_STATEMENT]
        ]
        for launch_id, position, message in conn.execute(sa.union_all(*probes)):
            found[(int(launch_id), int(position))] = message
    return found
