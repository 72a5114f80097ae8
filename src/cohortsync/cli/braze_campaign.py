"""`cohortsync braze campaign` and `cohortsync braze canvas`: campaigns, Canvases, outbox.

Thin commands over :mod:`cohortsync.braze.campaigns`. Each prints a few
lines for people, or one JSON document with ``--json``. The two groups
share their commands (list, show, launch, schedule, sends); only ``create``
differs: a campaign has one message, a Canvas ordered ``--step``s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from cohortsync.braze import campaigns
from cohortsync.braze.store import Store
from cohortsync.cli.braze_common import DbOption, WorkspaceOption, store_of
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.errors import ConfigError

campaign_app = typer.Typer(
    help=(
        "Campaigns: one message (email, push or webhook) to a Target Audience of segments.\n\n"
        "A launch writes one rendered message per user to the outbox ('sends'); nothing is "
        "delivered. --send-at schedules it: the running 'serve' launches it then. "
        "See docs/campaigns.md."
    ),
    no_args_is_help=True,
)
canvas_app = typer.Typer(
    help=(
        "Canvases: ordered message steps to a Target Audience; a step may narrow the "
        "audience to another segment from that step on.\n\n"
        "A launch writes every step's messages to the outbox ('sends'); nothing is "
        "delivered. See docs/campaigns.md."
    ),
    no_args_is_help=True,
)

SegmentsOption = Annotated[
    list[str],
    typer.Option("--segment", "-s", help="Include this segment's users (name or id; repeatable)."),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", help="Leave out this segment's users (repeatable)."),
]
SendAtOption = Annotated[
    str | None,
    typer.Option(
        "--send-at",
        help="Schedule: ISO-8601 time, e.g. 2026-12-24T09:00:00+01:00 (no zone: UTC). "
        "The running service launches it then.",
    ),
]
NameArgument = Annotated[str, typer.Argument(help="Name (or id) in the workspace.")]


def _word(kind: str) -> str:
    return "Canvas" if kind == "canvas" else "campaign"


def _segment_names(refs: list[dict[str, Any]]) -> str:
    return ", ".join(str(ref["name"] or ref["id"]) for ref in refs) or "none"


def _describe_lines(found: dict[str, Any], reachable: list[dict[str, Any]]) -> list[str]:
    kind = found["kind"]
    status = found["status"]
    if status == "scheduled":
        status += f" for {found['send_at']}"
    lines = [
        f"{_word(kind)} {found['name']!r} ({found['id']}): {status}",
        f"  include: {_segment_names(found['include_segments'])}",
        f"  exclude: {_segment_names(found['exclude_segments'])}",
    ]
    counts = {entry["position"]: entry["reachable"] for entry in reachable}
    for step in found["steps"]:
        narrow = f", narrowed to {step['segment']['name']!r}" if step["segment"] else ""
        label = f"step {step['position']} {step['name']!r}" if kind == "canvas" else "message"
        reach = f" ({counts[step['position']]:,} users now)" if step["position"] in counts else ""
        lines.append(f"  {label}: {step['channel']}{narrow}{reach}: {step['message']}")
    for launch in found["launches"]:
        lines.append(
            f"  launch {launch['id']} ({launch['trigger']}) at {launch['started_at']}: "
            f"{launch['messages']:,} messages"
        )
    return lines


def _print_saved(store: Store, saved: dict[str, Any], json: bool) -> None:
    reachable = campaigns.reachable_by_step(
        store, saved["id"], workspace=saved["workspace_id"], kind=saved["kind"]
    )
    if json:
        echo_json_line({**saved, "reachable": reachable})
    else:
        for line in _describe_lines(saved, reachable):
            typer.echo(line)


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Argument(help="Campaign name, unique in the workspace.")],
    workspace: WorkspaceOption,
    message: Annotated[
        str,
        typer.Option(
            "--message", "-m", help="The text; {{${first_name}}} fills in a profile attribute."
        ),
    ],
    segment: SegmentsOption,
    channel: Annotated[
        str, typer.Option("--channel", "-c", help="email, push or webhook.")
    ] = "email",
    exclude: ExcludeOption = None,
    send_at: SendAtOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Save a campaign: one message to the users of --segment, minus those of --exclude.

    Placeholders: {{${first_name}}}, {{custom_attribute.${plan}}},
    {{${first_name} | default: 'there'}} and {{${user_id}}} (the external id);
    an attribute a profile lacks prints empty (or the default). Anything else
    in {{ }} is refused now, not at launch.

    Examples:

    \b
      cohortsync braze campaign create "December picks" -w sandbox --segment "known vip" \\
          --channel email --message "Hi {{${first_name} | default: 'there'}}!"
      cohortsync braze campaign create Winback -w sandbox -s lapsed -x churned \\
          --channel push --message "We miss you" --send-at 2026-12-24T09:00:00+01:00
    """
    with store_of(db) as store:
        saved = campaigns.create_campaign(
            store,
            name,
            workspace=workspace,
            channel=channel,
            message=message,
            segments=segment,
            exclude=exclude or [],
            send_at=send_at,
        )
        _print_saved(store, saved, json)


def split_step(text: str) -> campaigns.Step:
    """``NAME|CHANNEL|MESSAGE[|SEGMENT]``; a ``|`` inside ``{{ }}`` belongs to the message."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    index = 0
    while index < len(text):
        pair = text[index : index + 2]
        if pair in ("{{", "}}"):
            depth = depth + 1 if pair == "{{" else max(depth - 1, 0)
            current.append(pair)
            index += 2
            continue
        if text[index] == "|" and depth == 0:
            fields.append("".join(current))
            current = []
        else:
            current.append(text[index])
        index += 1
    fields.append("".join(current))
    if len(fields) not in (3, 4):
        raise ConfigError(
            f"--step {text!r} has {len(fields)} fields, not 3 or 4",
            hint="write --step 'NAME|CHANNEL|MESSAGE' or 'NAME|CHANNEL|MESSAGE|NARROW SEGMENT'; "
            "a '|' of the message must be inside {{ }}, else use --steps-file",
        )
    name, channel, message = (field.strip() for field in fields[:3])
    segment = fields[3].strip() if len(fields) == 4 and fields[3].strip() else None
    return campaigns.Step(name=name, channel=channel, message=message, segment=segment)


def read_steps_file(path: Path) -> list[campaigns.Step]:
    """Steps from a JSON array of ``{"name", "channel", "message", "segment"?}``."""
    try:
        items = orjson.loads(path.read_bytes())
    except OSError as error:
        raise ConfigError(
            f"cannot read {path}: {error.strerror}", hint="pass a JSON file"
        ) from None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON: {error}", hint="write a JSON array") from None
    if not isinstance(items, list):
        raise ConfigError(f"{path} is not a JSON array of steps", hint=STEPS_FILE_SHAPE)
    steps = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), str) for key in ("name", "channel", "message")
        ):
            raise ConfigError(
                f"{path}: step {index} needs string name, channel and message",
                hint=STEPS_FILE_SHAPE,
            )
        segment = item.get("segment")
        if segment is not None and not isinstance(segment, str):
            raise ConfigError(
                f"{path}: step {index}: segment is not a string", hint=STEPS_FILE_SHAPE
            )
        steps.append(campaigns.Step(item["name"], item["channel"], item["message"], segment))
    return steps


STEPS_FILE_SHAPE = (
    '[{"name": "Welcome", "channel": "email", "message": "Hi {{${first_name}}}"}, '
    '{"name": "Nudge", "channel": "push", "message": "...", "segment": "engaged"}]'
)


@canvas_app.command("create")
def canvas_create(
    name: Annotated[str, typer.Argument(help="Canvas name, unique in the workspace.")],
    workspace: WorkspaceOption,
    segment: SegmentsOption,
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step",
            help="'NAME|CHANNEL|MESSAGE[|NARROW SEGMENT]', in order (repeatable). "
            "A '|' inside {{ }} belongs to the message.",
        ),
    ] = None,
    steps_file: Annotated[
        Path | None,
        typer.Option("--steps-file", help=f"The steps as JSON instead: {STEPS_FILE_SHAPE}"),
    ] = None,
    exclude: ExcludeOption = None,
    send_at: SendAtOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Save a Canvas: ordered steps, each a message to the audience of the steps so far.

    A step's fourth field narrows the audience to that segment's members from
    this step on (cumulatively): later steps reach no one the narrowing left out.
    Messages take the placeholders of 'campaign create'.

    Examples:

    \b
      cohortsync braze canvas create Onboarding -w sandbox --segment "new users" \\
          --step "Welcome|email|Hi {{${first_name} | default: 'there'}}" \\
          --step "Tips|push|Three tips for your first week" \\
          --step "VIP offer|email|Your offer inside|known vip"
      cohortsync braze canvas create Onboarding -w sandbox -s "new users" --steps-file steps.json
    """
    if bool(step) == (steps_file is not None):
        raise ConfigError(
            "give the steps either as --step options or as --steps-file",
            hint="e.g. --step 'Welcome|email|Hi {{${first_name}}}'",
        )
    parsed = [split_step(text) for text in step or []] if step else read_steps_file(steps_file)  # type: ignore[arg-type]
    with store_of(db) as store:
        saved = campaigns.create_canvas(
            store,
            name,
            workspace=workspace,
            steps=parsed,
            segments=segment,
            exclude=exclude or [],
            send_at=send_at,
        )
        _print_saved(store, saved, json)


def _register_shared(app: typer.Typer, kind: str) -> None:
    """list, show, launch, schedule and sends, for campaigns or for Canvases."""
    word = _word(kind)
    group = f"cohortsync braze {kind}"

    @app.command(
        "list",
        help=f"The workspace's {word}s, oldest first."
        f"\n\nExample:\n\n\b\n  {group} list -w sandbox --json",
    )
    def list_command(
        workspace: WorkspaceOption, db: DbOption = None, json: JsonOption = False
    ) -> None:
        with store_of(db) as store:
            found = campaigns.list_campaigns(store, workspace=workspace, kind=kind)
        if json:
            echo_json_line(found)
            return
        if not found:
            typer.echo(f"no {word}s in workspace {workspace}; create one with '{group} create'")
        for item in found:
            status = item["status"] + (
                f" for {item['send_at']}" if item["status"] == "scheduled" else ""
            )
            sent = sum(launch["messages"] for launch in item["launches"])
            typer.echo(
                f"{item['name']}\t{status}\t{len(item['steps'])} step(s)\t{sent:,} messages sent"
            )

    @app.command(
        "show",
        help=f"One {word}: audience, steps with the users each reaches now, launches."
        f"\n\nExample:\n\n\b\n  {group} show NAME -w sandbox",
    )
    def show_command(
        name: NameArgument,
        workspace: WorkspaceOption,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        with store_of(db) as store:
            found = campaigns.get_campaign(store, name, workspace=workspace, kind=kind)
            _print_saved(store, found, json)

    @app.command(
        "launch",
        help=f"Launch a {word} now: resolve its audience and write every message to the "
        "outbox, in one transaction (all or nothing). A campaign is sent once."
        f"\n\nExample:\n\n\b\n  {group} launch NAME -w sandbox\n  {group} sends NAME -w sandbox",
    )
    def launch_command(
        name: NameArgument,
        workspace: WorkspaceOption,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        with store_of(db) as store:
            launched = campaigns.launch_campaign(store, name, workspace=workspace, kind=kind)
        if json:
            echo_json_line(launched)
            return
        typer.echo(
            f"launched {word} {launched['name']!r} (launch {launched['launch_id']}): "
            f"{launched['messages']:,} messages in {launched['seconds']:.2f} s"
        )
        if kind == "canvas":
            for entry in launched["by_step"]:
                typer.echo(f"  step {entry['position']} {entry['name']!r}: {entry['messages']:,}")

    @app.command(
        "schedule",
        help=f"Schedule a draft {word} (--send-at), or make a scheduled one a draft again "
        "(--draft). The running 'cohortsync braze serve' launches it at the time."
        f"\n\nExamples:\n\n\b\n  {group} schedule NAME -w sandbox --send-at 2026-12-24T09:00:00Z"
        f"\n  {group} schedule NAME -w sandbox --draft",
    )
    def schedule_command(
        name: NameArgument,
        workspace: WorkspaceOption,
        send_at: SendAtOption = None,
        draft: Annotated[bool, typer.Option("--draft", help="Unschedule it.")] = False,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        if (send_at is None) == (not draft):
            raise ConfigError("give either --send-at TIME or --draft", hint="see --help")
        with store_of(db) as store:
            saved = campaigns.schedule_campaign(
                store, name, workspace=workspace, kind=kind, send_at=None if draft else send_at
            )
            _print_saved(store, saved, json)

    @app.command(
        "sends",
        help=f"The outbox of a {word}'s latest launch (or --launch ID): one message per user "
        "and step, by step then user."
        f"\n\nExamples:\n\n\b\n  {group} sends NAME -w sandbox --limit 20"
        f"\n  {group} sends NAME -w sandbox --offset 100 --limit 100 --json",
    )
    def sends_command(
        name: NameArgument,
        workspace: WorkspaceOption,
        limit: Annotated[int, typer.Option(min=1, max=100_000, help="Messages to show.")] = 20,
        offset: Annotated[int, typer.Option(min=0, help="Messages to skip first.")] = 0,
        launch: Annotated[
            int | None, typer.Option("--launch", help="A launch id (default: the latest).")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        with store_of(db) as store:
            page = campaigns.campaign_sends(
                store,
                name,
                workspace=workspace,
                kind=kind,
                launch_id=launch,
                offset=offset,
                limit=limit,
            )
        if json:
            echo_json_line(page)
            return
        if page["launch"] is None:
            typer.echo(f"{word} {page['name']!r} has not been launched; its outbox is empty")
            return
        shown = len(page["sends"])
        first = offset + 1 if shown else offset
        typer.echo(
            f"launch {page['launch']['id']} ({page['launch']['trigger']}) at "
            f"{page['launch']['started_at']}: messages {first:,}-{offset + shown:,} "
            f"of {page['total']:,}"
        )
        for send in page["sends"]:
            who = send["external_id"] or f"(anonymous user {send['user_id']})"
            typer.echo(f"{who}\t{send['step']}\t{send['message']}")


_register_shared(campaign_app, "campaign")
_register_shared(canvas_app, "canvas")
