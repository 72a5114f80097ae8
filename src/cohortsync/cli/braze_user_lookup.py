"""`cohortsync braze users find`: a user by external id, alias or device id, and the profile.

The terminal's twin of the dashboard's User Search: the same lookup
(:func:`lookup.find_users`) inside one workspace, and with ``--profile`` the
same profile (:func:`lookup.user_profile`): why a user is, or is not, in a
campaign's audience. Nothing found exits 1, so a script can test for it.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from cohortsync.braze.admin import resolve_workspace
from cohortsync.braze.profiles import lookup
from cohortsync.braze.store import Store
from cohortsync.cli.braze_common import DbOption, WorkspaceOption, print_json, store_of
from cohortsync.errors import ConfigError


def user_find(
    workspace: WorkspaceOption,
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="The user's external id (exact).")
    ] = None,
    alias_label: Annotated[
        str | None, typer.Option("--alias-label", help="An alias's label, e.g. email.")
    ] = None,
    alias_name: Annotated[
        str | None, typer.Option("--alias-name", help="The alias itself, e.g. a@x.io.")
    ] = None,
    device_id: Annotated[str | None, typer.Option("--device-id", help="A device id.")] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also print each user's attributes, cohorts, segments and messages received.",
        ),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON only, for scripts.")] = False,
    db: DbOption = None,
) -> None:
    """Find the workspace's users holding one identifier: --external-id, --alias-label with
    --alias-name, or --device-id. Exits 1 when nobody holds it."""
    alias = _alias(alias_label, alias_name)
    with store_of(db) as store:
        with store.read() as conn:
            workspace_id = resolve_workspace(conn, workspace)
        found = lookup.find_users(
            store, workspace_id, external_id=external_id, alias=alias, device_id=device_id
        )
        profiles = _profiles(store, workspace_id, found) if profile else []
    asked = _described(external_id, alias, device_id)
    if json:
        print_json([p.as_dict() for p in profiles] if profile else [u.as_dict() for u in found])
    elif not found:
        typer.echo(f"no user with {asked} in workspace {workspace}")
    elif profile:
        for index, one in enumerate(profiles):
            if index:
                typer.echo("")
            _echo_profile(one)
    else:
        for user in found:
            typer.echo(_summary(user))
    if not found:
        raise typer.Exit(1)


def _alias(label: str | None, name: str | None) -> tuple[str, str] | None:
    if label is None and name is None:
        return None
    if label is None or name is None:
        raise ConfigError(
            "an alias lookup needs both --alias-label and --alias-name",
            hint="e.g. --alias-label email --alias-name someone@example.com",
        )
    return (label, name)


def _profiles(
    store: Store, workspace_id: int, found: list[lookup.FoundUser]
) -> list[lookup.UserProfile]:
    read = [lookup.user_profile(store, workspace_id, user.braze_id) for user in found]
    return [one for one in read if one is not None]


def _described(external_id: str | None, alias: tuple[str, str] | None, device: str | None) -> str:
    if alias is not None:
        return f"alias {alias[1]!r} (label {alias[0]!r})"
    if device is not None:
        return f"device id {device!r}"
    return f"external id {external_id!r}"


def _who(user: lookup.FoundUser | lookup.UserProfile) -> str:
    name = "anonymous user" if user.external_id is None else user.external_id
    return f"{name} (braze id {user.braze_id})"


def _identifiers(user: lookup.FoundUser | lookup.UserProfile) -> str:
    aliases = ", ".join(f"{a['alias_label']}:{a['alias_name']}" for a in user.aliases)
    return f"aliases: {aliases or 'none'}; device ids: {', '.join(user.device_ids) or 'none'}"


def _summary(user: lookup.FoundUser) -> str:
    return f"{_who(user)}: {_identifiers(user)}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _echo_profile(one: lookup.UserProfile) -> None:
    typer.echo(_who(one))
    typer.echo(f"  {_identifiers(one)}")
    typer.echo(f"  created: {one.created_at}")
    typer.echo("  custom attributes:" + ("" if one.attributes else " none"))
    for name, value in sorted(one.attributes.items()):
        typer.echo(f"    {name}: {_json(value)}")
    cohorts = ", ".join(
        f"{c['name']} ({c['cohort_id']}, {c['partner_display_name']})" for c in one.cohorts
    )
    typer.echo(f"  cohorts: {cohorts or 'none'}")
    typer.echo(f"  segments: {', '.join(s['name'] for s in one.segments) or 'none'}")
    typer.echo(
        f"  messages received (from the {lookup.RECENT_LAUNCHES} latest launches):"
        + ("" if one.messages else " none")
    )
    for message in one.messages:
        step = f" step {message.position} {message.step!r}" if message.kind == "canvas" else ""
        typer.echo(
            f"    {message.sent_at} {message.campaign!r}{step} by {message.channel}: "
            f"{message.message}"
        )
