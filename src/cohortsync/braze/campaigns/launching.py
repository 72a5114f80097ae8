"""Launching: every message of a campaign or Canvas written to the outbox, all or nothing.

A launch resolves the audience now and writes one rendered message per user
and step into ``braze_campaign_sends`` (nothing is delivered: the outbox is
what a real Braze would send). It is one write transaction: the claim of
the campaign (its status becomes ``sent``), the launch row, every message.
If anything fails, nothing of it stays and the campaign keeps its status.

The messages are rendered by the database in one ``INSERT ... SELECT``
(:mod:`cohortsync.braze.store.campaign_queries`), so no user passes
through Python and a launch's memory does not grow with its audience.

A scheduled campaign is launched by :func:`launch_due`, which the running
service calls every second (:mod:`.schedule`). Two service processes on one
store may both find it due; the claim is a conditional ``UPDATE`` and only
the one that changed the row launches.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cohortsync.braze.campaigns.audience import step_audiences
from cohortsync.braze.campaigns.definitions import (
    KIND_WORDS,
    WorkspaceRef,
    campaign_of,
    parse_send_at,
    workspace_id_of,
)
from cohortsync.braze.campaigns.rendering import compile_message
from cohortsync.braze.store import Store, campaign_queries, utc_now
from cohortsync.errors import ConfigError

SENDS_PAGE_SIZE = 100


def _launch(
    store: Store,
    campaign_id: str,
    workspace_id: int,
    kind: str,
    *,
    trigger: str,
    due_by: str | None = None,
) -> dict[str, Any] | None:
    """Claim and launch; None when the campaign was not there to claim (already sent,
    or, with ``due_by``, not due)."""
    started = time.perf_counter()
    from_statuses = ("scheduled",) if trigger == "scheduled" else ("draft", "scheduled")
    with store.write() as conn:
        now = utc_now()
        if not campaign_queries.claim(
            conn, campaign_id, from_statuses=from_statuses, now=now, due_by=due_by
        ):
            return None
        row = campaign_of(conn, workspace_id, kind, campaign_id)
        steps = campaign_queries.steps_of(conn, row.id)
        audiences = step_audiences(conn, workspace_id, row, steps)
        dialect = conn.dialect.name
        launch_id = campaign_queries.insert_launch(conn, row.id, trigger, now)
        messages = campaign_queries.write_sends(
            conn,
            launch_id,
            [
                (
                    step.position,
                    campaign_queries.message_expression(
                        dialect, compile_message(step.message).parts
                    ),
                    audience,
                )
                for step, audience in zip(steps, audiences, strict=True)
            ],
        )
        finished = utc_now()
        campaign_queries.finish_launch(conn, launch_id, finished, messages)
        by_step = (
            campaign_queries.sends_by_step(conn, launch_id)
            if len(steps) > 1
            else {steps[0].position: messages}
        )
    return {
        "campaign_id": row.id,
        "kind": row.kind,
        "name": row.name,
        "launch_id": launch_id,
        "trigger": trigger,
        "started_at": now,
        "finished_at": finished,
        "messages": messages,
        "by_step": [
            {"position": s.position, "name": s.name, "messages": by_step.get(s.position, 0)}
            for s in steps
        ],
        "seconds": round(time.perf_counter() - started, 3),
    }


def launch_campaign(
    store: Store, ref: str, *, workspace: WorkspaceRef, kind: str = "campaign"
) -> dict[str, Any]:
    """Launch a draft or scheduled campaign (or Canvas) now; a campaign is sent once.

    Returns ``{"campaign_id", "kind", "name", "launch_id", "trigger", "started_at",
    "finished_at", "messages", "by_step": [{"position", "name", "messages"}], "seconds"}``.

    Raises:
        ConfigError: no such campaign, it was sent already, or a segment it
            names no longer exists.
    """
    with store.read() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        row = campaign_of(conn, workspace_id, kind, ref)
    launched = _launch(store, row.id, workspace_id, kind, trigger="launch")
    if launched is None:
        raise ConfigError(
            f"{KIND_WORDS[kind]} {row.name!r} was sent already; a campaign is sent once",
            hint=f"see its outbox with 'cohortsync braze {kind} sends', or create another",
        )
    return launched


def launch_due(store: Store, now: str | datetime | None = None) -> list[dict[str, Any]]:
    """Launch every scheduled campaign and Canvas whose send time is ``now`` or past.

    Each is launched exactly once, even by several processes calling this
    on one store: the one whose claim changes the row launches it.
    Returns the launches this call made (as :func:`launch_campaign`).
    """
    moment = utc_now() if now is None else parse_send_at(now)
    with store.read() as conn:
        due = campaign_queries.due_campaign_ids(conn, moment)
        rows = [campaign_queries.campaign_by_id(conn, campaign_id) for campaign_id in due]
    launched = []
    for row in rows:
        if row is None:
            continue
        done = _launch(
            store, row.id, row.workspace_id, row.kind, trigger="scheduled", due_by=moment
        )
        if done is not None:
            launched.append(done)
    return launched


def campaign_sends(
    store: Store,
    ref: str,
    *,
    workspace: WorkspaceRef,
    kind: str = "campaign",
    launch_id: int | None = None,
    offset: int = 0,
    limit: int = SENDS_PAGE_SIZE,
) -> dict[str, Any]:
    """A page of the outbox of a campaign's launch (its latest by default).

    Returns ``{"campaign_id", "name", "launch": {...} | None, "total", "offset",
    "limit", "sends": [{"position", "step", "user_id", "external_id", "message"}]}``;
    ``launch`` is None (and ``sends`` empty) before the first launch.
    """
    if offset < 0 or limit < 1:
        raise ConfigError("offset must be 0 or more and limit 1 or more", hint="e.g. --limit 20")
    with store.read() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        row = campaign_of(conn, workspace_id, kind, ref)
        launches = campaign_queries.launches_of(conn, row.id)
        chosen = launches[-1] if launches and launch_id is None else None
        if launch_id is not None:
            chosen = next((launch for launch in launches if launch.id == launch_id), None)
            if chosen is None:
                raise ConfigError(
                    f"{KIND_WORDS[kind]} {row.name!r} has no launch {launch_id}",
                    hint=f"its launches: {', '.join(str(x.id) for x in launches) or 'none yet'}",
                )
        steps = {step.position: step.name for step in campaign_queries.steps_of(conn, row.id)}
        sends = (
            campaign_queries.sends_page(conn, chosen.id, offset=offset, limit=limit)
            if chosen is not None
            else []
        )
    return {
        "campaign_id": row.id,
        "name": row.name,
        "launch": None
        if chosen is None
        else {
            "id": chosen.id,
            "trigger": chosen.trigger,
            "started_at": chosen.started_at,
            "finished_at": chosen.finished_at,
            "messages": int(chosen.messages),
        },
        "total": 0 if chosen is None else int(chosen.messages),
        "offset": offset,
        "limit": limit,
        "sends": [
            {
                "position": send.position,
                "step": steps.get(send.position),
                "user_id": send.user_id,
                "external_id": send.external_id,
                "message": send.message,
            }
            for send in sends
        ],
    }
