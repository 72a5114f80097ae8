"""Who a campaign reaches: its segments' members, resolved by the database when asked.

The Target Audience is the union of the *include* segments minus the union
of the *exclude* segments; a Canvas step also keeps only the members of
every narrowing segment up to it. Nothing is stored: membership is whatever
the cohorts hold at the moment of the count or the launch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.braze.campaigns.definitions import (
    WorkspaceRef,
    campaign_of,
    workspace_id_of,
)
from cohortsync.braze.store import Store, campaign_queries, segment_queries
from cohortsync.errors import ConfigError


def _trees(conn: sa.Connection, workspace_id: int, refs: Sequence[str]) -> list[dict[str, Any]]:
    """Filter trees of segments named by id or name; a ConfigError for one that is missing."""
    trees = []
    for ref in refs:
        row = segment_queries.segment_row(conn, workspace_id, ref, or_name=True)
        if row is None:
            raise ConfigError(
                f"no segment {ref!r} in workspace {workspace_id}",
                hint="see 'cohortsync braze segment list'",
            )
        trees.append(orjson.loads(row.filter))
    return trees


def audience_count(
    store: Store,
    *,
    workspace: WorkspaceRef,
    segments: Sequence[str],
    exclude: Sequence[str] = (),
) -> int:
    """Reachable users: in any of ``segments`` and none of ``exclude`` (ids or names).

    No segment included reaches nobody (0), as an empty Target Audience does.
    """
    with store.read() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        if not segments:
            return 0
        condition = campaign_queries.audience_condition(
            workspace_id, _trees(conn, workspace_id, segments), _trees(conn, workspace_id, exclude)
        )
        return campaign_queries.count_users(conn, condition)


def step_audiences(
    conn: sa.Connection, workspace_id: int, row: Any, steps: Sequence[Any]
) -> list[ColumnElement[bool]]:
    """Each step's audience condition: the campaign's, narrowed cumulatively."""
    include = orjson.loads(row.include_segments)
    exclude = orjson.loads(row.exclude_segments)
    narrowing = [step.segment_id for step in steps if step.segment_id]
    trees = campaign_queries.segment_trees(conn, workspace_id, [*include, *exclude, *narrowing])
    missing = [s for s in [*include, *exclude, *narrowing] if s not in trees]
    if missing:
        raise ConfigError(
            f"{row.kind} {row.name!r} names segment {missing[0]} that no longer exists",
            hint="edit its audience",
        )
    conditions = []
    narrow: list[dict[str, Any]] = []
    for step in steps:
        if step.segment_id:
            narrow.append(trees[step.segment_id])
        conditions.append(
            campaign_queries.audience_condition(
                workspace_id,
                [trees[s] for s in include],
                [trees[s] for s in exclude],
                list(narrow),
            )
        )
    return conditions


def reachable_by_step(
    store: Store, ref: str, *, workspace: WorkspaceRef, kind: str = "campaign"
) -> list[dict[str, Any]]:
    """Users each step of a saved campaign (or Canvas) would reach now:
    ``[{"position", "name", "reachable"}]``."""
    with store.read() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        row = campaign_of(conn, workspace_id, kind, ref)
        steps = campaign_queries.steps_of(conn, row.id)
        conditions = step_audiences(conn, workspace_id, row, steps)
        return [
            {
                "position": step.position,
                "name": step.name,
                "reachable": campaign_queries.count_users(conn, condition),
            }
            for step, condition in zip(steps, conditions, strict=True)
        ]
