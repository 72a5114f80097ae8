"""Campaigns and Canvases: what is saved, checked when it is saved.

A **campaign** is one message (a channel and its text) to a Target
Audience: the users of any *include* segment who are in no *exclude*
segment. A **Canvas** is the same audience taken through ordered steps,
each a message; a step may *narrow* the audience to another segment's
members, and the narrowing holds for the steps after it too.

Everything a launch needs is checked here, at save time: the channel, each
message's placeholders (:mod:`.rendering`), that every segment exists in the
workspace, the name's uniqueness. Segments are named by id or by name and
stored by id, so renaming a segment keeps its campaigns.

Every function takes an open :class:`~cohortsync.braze.store.Store`, names
the workspace by id or name (as :mod:`cohortsync.braze.admin` does) and
returns JSON-ready dicts (:func:`describe`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from cohortsync.braze.campaigns.rendering import compile_message
from cohortsync.braze.store import (
    Store,
    account_queries,
    campaign_queries,
    segment_queries,
    utc_now,
)
from cohortsync.errors import ConfigError

CHANNELS = ("email", "push", "webhook")
KINDS = ("campaign", "canvas")
STATUSES = ("draft", "scheduled", "sent")
WorkspaceRef = int | str
KIND_WORDS = {"campaign": "campaign", "canvas": "Canvas"}


@dataclass(frozen=True)
class Step:
    """One message of a campaign or Canvas; ``segment`` (id or name) narrows the
    audience from this step on."""

    name: str
    channel: str
    message: str
    segment: str | None = None


def workspace_id_of(conn: sa.Connection, workspace: WorkspaceRef) -> int:
    found = account_queries.workspace_id_of(conn, str(workspace))
    if found is None:
        raise ConfigError(
            f"no workspace {str(workspace)!r} in this store",
            hint="create it with 'cohortsync braze workspace create NAME', or check --db",
        )
    return found


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}", hint="use 'campaign' or 'canvas'")


def campaign_of(conn: sa.Connection, workspace_id: int, kind: str, ref: str) -> Any:
    """The campaign (or Canvas) row by id or name, or a ConfigError naming the list command."""
    check_kind(kind)
    row = campaign_queries.campaign_row(conn, workspace_id, kind, ref)
    if row is None:
        raise ConfigError(
            f"no {KIND_WORDS[kind]} {ref!r} in workspace {workspace_id}",
            hint=f"see 'cohortsync braze {kind} list --workspace {workspace_id}'",
        )
    return row


def parse_send_at(value: str | datetime) -> str:
    """A send time as the store's UTC ISO-8601 text; a time without zone is UTC."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"cannot read the send time {value!r}",
                hint="use ISO-8601, e.g. 2026-12-24T09:00:00+01:00 (no zone: UTC)",
            ) from None
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _segment_ids(
    conn: sa.Connection, workspace_id: int, refs: Iterable[str], role: str
) -> list[str]:
    ids: list[str] = []
    for ref in refs:
        row = segment_queries.segment_row(conn, workspace_id, ref, or_name=True)
        if row is None:
            raise ConfigError(
                f"{role}: no segment {ref!r} in workspace {workspace_id}",
                hint="see 'cohortsync braze segment list'; create it with "
                "'cohortsync braze segment create'",
            )
        if row.id not in ids:
            ids.append(str(row.id))
    return ids


def _checked_steps(
    conn: sa.Connection, workspace_id: int, kind: str, steps: Sequence[Step]
) -> list[dict[str, Any]]:
    if not steps:
        raise ConfigError(
            f"a {KIND_WORDS[kind]} needs at least one step",
            hint="give it a channel and a message" if kind == "campaign" else "add --step",
        )
    if kind == "campaign" and len(steps) != 1:
        raise ConfigError(
            f"a campaign has exactly one message, not {len(steps)}",
            hint="use a Canvas for several steps",
        )
    rows = []
    for position, step in enumerate(steps, start=1):
        where = "the message" if kind == "campaign" else f"step {position} ({step.name!r})"
        if not step.name.strip():
            raise ConfigError(f"step {position} has no name", hint="name every step")
        if step.channel not in CHANNELS:
            raise ConfigError(
                f"{where}: unknown channel {step.channel!r}", hint="use email, push or webhook"
            )
        compile_message(
            step.message, where="message" if kind == "campaign" else f"message of {where}"
        )
        segment_id = None
        if step.segment:
            if kind == "campaign":
                raise ConfigError(
                    "a campaign's message cannot narrow its audience",
                    hint="add the segment to the audience, or use a Canvas",
                )
            [segment_id] = _segment_ids(conn, workspace_id, [step.segment], where)
        rows.append(
            {
                "position": position,
                "name": step.name.strip(),
                "channel": step.channel,
                "message": step.message,
                "segment_id": segment_id,
            }
        )
    return rows


def _save(
    store: Store,
    *,
    kind: str,
    workspace: WorkspaceRef,
    name: str,
    steps: Sequence[Step],
    include: Sequence[str],
    exclude: Sequence[str],
    send_at: str | datetime | None,
    existing: str | None = None,
) -> dict[str, Any]:
    check_kind(kind)
    word = KIND_WORDS[kind]
    if not name.strip():
        raise ConfigError(f"a {word} name must not be empty", hint="pass a NAME")
    name = name.strip()
    if not include:
        raise ConfigError(
            f"{word} {name!r} has no Target Audience",
            hint="include at least one segment (--segment NAME)",
        )
    when = None if send_at is None else parse_send_at(send_at)
    now = utc_now()
    with store.write() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        include_ids = _segment_ids(conn, workspace_id, include, "include")
        exclude_ids = _segment_ids(conn, workspace_id, exclude, "exclude")
        step_rows = _checked_steps(conn, workspace_id, kind, steps)
        holder = campaign_queries.campaign_named(conn, workspace_id, kind, name)
        if holder is not None and holder != existing:
            raise ConfigError(f"{word} {name!r} exists already", hint="pick another name")
        values = {
            "name": name,
            "include_segments": orjson.dumps(include_ids).decode(),
            "exclude_segments": orjson.dumps(exclude_ids).decode(),
            "status": "draft" if when is None else "scheduled",
            "send_at": when,
            "updated_at": now,
        }
        if existing is None:
            campaign_id = str(uuid.uuid4())
            campaign_queries.insert_campaign(
                conn,
                {
                    **values,
                    "id": campaign_id,
                    "workspace_id": workspace_id,
                    "kind": kind,
                    "created_at": now,
                },
            )
        else:
            campaign_id = existing
            campaign_queries.update_campaign(conn, campaign_id, values)
        campaign_queries.replace_steps(conn, campaign_id, step_rows)
        row = campaign_of(conn, workspace_id, kind, campaign_id)
        return describe(conn, row)


def create_campaign(
    store: Store,
    name: str,
    *,
    workspace: WorkspaceRef,
    channel: str,
    message: str,
    segments: Sequence[str],
    exclude: Sequence[str] = (),
    send_at: str | datetime | None = None,
) -> dict[str, Any]:
    """Save a campaign: one message to the users of ``segments`` minus ``exclude``.

    With ``send_at`` it is scheduled (the service launches it then), else a draft.
    """
    return _save(
        store,
        kind="campaign",
        workspace=workspace,
        name=name,
        steps=[Step(name=name.strip() or "message", channel=channel, message=message)],
        include=segments,
        exclude=exclude,
        send_at=send_at,
    )


def create_canvas(
    store: Store,
    name: str,
    *,
    workspace: WorkspaceRef,
    steps: Sequence[Step],
    segments: Sequence[str],
    exclude: Sequence[str] = (),
    send_at: str | datetime | None = None,
) -> dict[str, Any]:
    """Save a Canvas: ordered ``steps`` for the users of ``segments`` minus ``exclude``."""
    return _save(
        store,
        kind="canvas",
        workspace=workspace,
        name=name,
        steps=steps,
        include=segments,
        exclude=exclude,
        send_at=send_at,
    )


def update_campaign(
    store: Store,
    ref: str,
    *,
    workspace: WorkspaceRef,
    kind: str = "campaign",
    name: str | None = None,
    segments: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    steps: Sequence[Step] | None = None,
    channel: str | None = None,
    message: str | None = None,
    send_at: str | datetime | None = None,
    unschedule: bool = False,
) -> dict[str, Any]:
    """Change a draft or scheduled campaign (or Canvas); what is not given stays.

    ``channel``/``message`` change a campaign's one message; ``steps`` replace
    a Canvas's. ``send_at`` schedules it; ``unschedule`` makes it a draft again.
    A sent campaign cannot change: the outbox shows what it sent.
    """
    current = get_campaign(store, ref, workspace=workspace, kind=kind)
    if current["status"] == "sent":
        raise ConfigError(
            f"{KIND_WORDS[kind]} {current['name']!r} was sent; it cannot change",
            hint="create another one",
        )
    old_steps = [
        Step(s["name"], s["channel"], s["message"], s["segment"]["id"] if s["segment"] else None)
        for s in current["steps"]
    ]
    if kind == "campaign" and (channel is not None or message is not None):
        first = old_steps[0]
        steps = [
            Step(
                first.name,
                channel or first.channel,
                message if message is not None else first.message,
            )
        ]
    new_name = current["name"] if name is None else name
    if kind == "campaign" and steps is None and name is not None:
        steps = [Step(new_name, old_steps[0].channel, old_steps[0].message)]
    when: str | datetime | None = current["send_at"]
    if unschedule:
        when = None
    elif send_at is not None:
        when = send_at
    return _save(
        store,
        kind=kind,
        workspace=workspace,
        name=new_name,
        steps=old_steps if steps is None else steps,
        include=[s["id"] for s in current["include_segments"]] if segments is None else segments,
        exclude=[s["id"] for s in current["exclude_segments"]] if exclude is None else exclude,
        send_at=when,
        existing=current["id"],
    )


def schedule_campaign(
    store: Store,
    ref: str,
    *,
    workspace: WorkspaceRef,
    kind: str = "campaign",
    send_at: str | datetime | None,
) -> dict[str, Any]:
    """Set the send time (the running service launches it then), or ``None`` for a draft."""
    return update_campaign(
        store, ref, workspace=workspace, kind=kind, send_at=send_at, unschedule=send_at is None
    )


def get_campaign(
    store: Store, ref: str, *, workspace: WorkspaceRef, kind: str = "campaign"
) -> dict[str, Any]:
    """The campaign (or Canvas) by id or name: see :func:`describe`."""
    with store.read() as conn:
        row = campaign_of(conn, workspace_id_of(conn, workspace), kind, ref)
        return describe(conn, row)


def list_campaigns(
    store: Store,
    *,
    workspace: WorkspaceRef,
    kind: str = "campaign",
    descending: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The workspace's campaigns (or Canvases) by creation, each as :func:`describe`."""
    check_kind(kind)
    with store.read() as conn:
        workspace_id = workspace_id_of(conn, workspace)
        rows = campaign_queries.campaign_rows(
            conn, workspace_id, kind, descending=descending, offset=offset, limit=limit
        )
        return [describe(conn, row) for row in rows]


def describe(conn: sa.Connection, row: Any) -> dict[str, Any]:
    """A campaign row as JSON-ready values.

    ``{"id", "kind", "name", "workspace_id", "status", "send_at", "created_at",
    "updated_at", "include_segments": [{"id", "name"}], "exclude_segments": [...],
    "steps": [{"position", "name", "channel", "message", "segment": {"id", "name"} | None}],
    "launches": [{"id", "trigger", "started_at", "finished_at", "messages"}]}``
    """
    include = orjson.loads(row.include_segments)
    exclude = orjson.loads(row.exclude_segments)
    steps = campaign_queries.steps_of(conn, row.id)
    names = campaign_queries.segment_names(
        conn, row.workspace_id, [*include, *exclude, *(s.segment_id for s in steps if s.segment_id)]
    )

    def segment(segment_id: str) -> dict[str, Any]:
        return {"id": segment_id, "name": names.get(segment_id)}

    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "workspace_id": row.workspace_id,
        "status": row.status,
        "send_at": row.send_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "include_segments": [segment(s) for s in include],
        "exclude_segments": [segment(s) for s in exclude],
        "steps": [
            {
                "position": step.position,
                "name": step.name,
                "channel": step.channel,
                "message": step.message,
                "segment": segment(step.segment_id) if step.segment_id else None,
            }
            for step in steps
        ],
        "launches": [
            {
                "id": launch.id,
                "trigger": launch.trigger,
                "started_at": launch.started_at,
                "finished_at": launch.finished_at,
                "messages": int(launch.messages),
            }
            for launch in campaign_queries.launches_of(conn, row.id)
        ],
    }
