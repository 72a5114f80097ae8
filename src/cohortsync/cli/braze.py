"""`cohortsync braze`: the Braze-compatible receiving service and its administration.

Thin commands over :mod:`cohortsync.braze.admin` and :mod:`cohortsync.braze.server`;
each administration command prints JSON on stdout so scripts can read it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

from cohortsync.braze import admin
from cohortsync.braze.ratelimit import DEFAULT_REQUESTS_PER_HOUR, parse_rate_limit
from cohortsync.braze.store import open_store, store_status, upgrade_store
from cohortsync.cli.braze_campaign import campaign_app, canvas_app
from cohortsync.cli.braze_common import (
    DbOption,
    PartnerOption,
    WorkspaceOption,
    db_url,
    print_json,
    printable_url,
    store_of,
)
from cohortsync.cli.braze_segment import segment_app
from cohortsync.cli.braze_user import user_app
from cohortsync.cli.braze_user_lookup import user_find
from cohortsync.cli.db import outcome_line, status_document, status_line
from cohortsync.cli.export_options import MAX_PORT
from cohortsync.cli.log_options import LogFormatChoice, LogFormatOption
from cohortsync.cli.output import JsonOption, echo_json_line
from cohortsync.errors import ConfigError
from cohortsync.logs import announce
from cohortsync.logs import configure as configure_logs

app = typer.Typer(
    help=(
        "The Braze-compatible receiving service and its administration.\n\n"
        "Set up a sandbox: 'workspace create', 'partner create treasuredata --display-name "
        "\"Treasure Data\" --api-key KEY', 'partner enable', 'key generate', 'users load'; then "
        "'serve' and point an export at it. 'cohorts list' shows each cohort's match rate. "
        "Every command works on the store named by --db (default $COHORTSYNC_HOME/braze.db)."
    ),
    no_args_is_help=True,
)
workspace_app = typer.Typer(help="Workspaces: each has a REST API key.", no_args_is_help=True)
partner_app = typer.Typer(
    help="Technology partners, such as treasuredata, and their partner API keys.",
    no_args_is_help=True,
)
key_app = typer.Typer(
    help=(
        "Data import keys (the client_secret a partner sends) and the source addresses "
        "each key, and each workspace's REST API key, may be sent from."
    ),
    no_args_is_help=True,
)
AllowOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        help="An address or CIDR range (IPv4 or IPv6) the key may be sent from; repeatable. "
        "Requests from elsewhere get 401 as for an unknown key. None: any source.",
        show_default=False,
    ),
]
users_app = typer.Typer(help="User profiles of a workspace.", no_args_is_help=True)
users_app.command("find")(user_find)
cohorts_app = typer.Typer(
    help="Cohorts that partners sent, their members and match rates.", no_args_is_help=True
)
db_app = typer.Typer(
    help=(
        "The store's schema version, and upgrading it.\n\n"
        "Every command (and serve) upgrades an older store when it opens it; a SQLite store "
        "is copied to braze.db.bak-REVISION-TIME beside it first. A store newer than this "
        "cohortsync is refused: upgrade cohortsync. See docs/upgrading.md."
    ),
    no_args_is_help=True,
)
app.add_typer(workspace_app, name="workspace")
app.add_typer(partner_app, name="partner")
app.add_typer(key_app, name="key")
app.add_typer(users_app, name="users")
app.add_typer(cohorts_app, name="cohorts")
app.add_typer(segment_app, name="segment")
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(canvas_app, name="canvas")
app.add_typer(user_app, name="user")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_PORT,
            help="Port to listen on (0: any free one; the 'serving on' line says which).",
        ),
    ] = 9292,
    db: DbOption = None,
    rate_limit: Annotated[
        str,
        typer.Option(
            "--rate-limit",
            help="Requests per (partner, workspace), as N/hour, N/minute or N/second.",
        ),
    ] = f"{DEFAULT_REQUESTS_PER_HOUR}/hour",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            min=0.1,
            max=3600,
            help="Seconds a request body may take to arrive; then 408 and the connection closes.",
        ),
    ] = 30.0,
    log_format: LogFormatOption = LogFormatChoice.text,
    metrics: Annotated[
        bool,
        typer.Option(
            help="Serve Prometheus metrics at GET /metrics, without authentication "
            "(see docs/braze-service.md#metrics).",
        ),
    ] = True,
) -> None:
    """Run the service: POST /partners/{partner}/cohorts[/users] and Braze's /users, /segments.

    The OpenAPI document is at /openapi.json and browsable at /docs. Stop with Ctrl-C.

    A client that sends its body slower than --body-timeout allows gets 408
    and is dropped; one that disconnects is logged as one line (method, path,
    address, what happened), never with a traceback.

    Examples:

    \b
      cohortsync braze serve --port 9292 --db sqlite:///braze.db
      cohortsync braze serve --port 0   # any free port: see the 'serving on' line
      cohortsync braze serve --rate-limit 1000/minute --body-timeout 10 --access-log
      cohortsync braze serve --log-format json --access-log   # one JSON object a line
      cohortsync braze serve --no-metrics   # no GET /metrics
    """
    # Imported here: FastAPI and uvicorn are loaded only by the command that serves.
    from cohortsync.braze.server import serve as run

    configure_logs(log_format.value)
    limit = parse_rate_limit(rate_limit)
    url = db_url(db)
    # Upgrade (or refuse, in one line) before saying anything about serving.
    open_store(url).close()
    shown = printable_url(url)
    announce(f"store: {shown}; rate limit {limit}", store=shown, rate_limit=str(limit))
    run(
        url,
        host=host,
        port=port,
        rate_limit=limit,
        access_log=access_log,
        body_timeout=body_timeout,
        log_format=log_format.value,
        metrics=metrics,
    )


@workspace_app.command("create")
def workspace_create(
    name: Annotated[str, typer.Argument(help="Workspace name, unique in the store.")],
    allow: AllowOption = None,
    db: DbOption = None,
) -> None:
    """Create a workspace; prints {"id", "name", "rest_api_key", "allowed_sources"}.

    --allow restricts its REST API key to those sources (see 'key allow').
    """
    with store_of(db) as store:
        print_json(admin.create_workspace(store, name, allow=allow))


@workspace_app.command("rotate-rest-key")
def workspace_rotate_rest_key(
    workspace: Annotated[str, typer.Argument(help="Workspace id or name.")],
    db: DbOption = None,
) -> None:
    """Give a workspace a new REST API key; prints {"id", "name", "rest_api_key"}.

    The old key is refused (401) from this moment on, by a running service
    too; its source allowlist carries over to the new key. Then give the new
    key to the exporting side: 'cohortsync auth update NAME' with
    COHORTSYNC_REST_API_KEY set to it. Runs started in between fail with 401
    and are run again.

    Examples:

    \b
      cohortsync braze workspace rotate-rest-key acme
    """
    with store_of(db) as store:
        print_json(admin.rotate_rest_api_key(store, workspace=workspace))


@partner_app.command("create")
def partner_create(
    name: Annotated[str, typer.Argument(help="Partner name used in the URL, e.g. treasuredata.")],
    api_key: Annotated[str, typer.Option("--api-key", help="A partner API key to accept.")],
    display_name: Annotated[
        str | None,
        typer.Option("--display-name", help='Shown in the dashboard, e.g. "Treasure Data".'),
    ] = None,
    filter_name: Annotated[
        str | None,
        typer.Option(
            "--filter-name", help='Segment filter name. Default: "<display name> Cohorts".'
        ),
    ] = None,
    region: Annotated[str, typer.Option(help="Region of this key: us or eu.")] = "us",
    db: DbOption = None,
) -> None:
    """Create a technology partner, or add a partner API key (one per region) to it."""
    with store_of(db) as store:
        print_json(
            admin.create_partner(
                store,
                name,
                api_key=api_key,
                display_name=display_name,
                filter_name=filter_name,
                region=region,
            )
        )


@partner_app.command("remove-key")
def partner_remove_key(
    name: Annotated[str, typer.Argument(help="Partner name.")],
    api_key: Annotated[str, typer.Option("--api-key", help="The partner API key to refuse.")],
    db: DbOption = None,
) -> None:
    """Stop accepting one of a partner's API keys; prints the partner and the keys left.

    With 'partner create NAME --api-key NEW' first, a partner API key rotates
    without a gap: add the new key, move the exporting side to it
    (COHORTSYNC_PARTNER_API_KEY, then restart the scheduler and the console),
    then remove the old one. Requests with it are refused from then on.
    """
    with store_of(db) as store:
        print_json(admin.remove_partner_api_key(store, name, api_key=api_key))


@partner_app.command("enable")
def partner_enable(
    name: Annotated[str, typer.Argument(help="Partner name.")],
    workspace: WorkspaceOption,
    db: DbOption = None,
) -> None:
    """Let a workspace accept cohorts from the partner."""
    with store_of(db) as store:
        print_json(admin.enable_partner(store, name, workspace=workspace))


@key_app.command("generate")
def key_generate(
    workspace: WorkspaceOption,
    partner: PartnerOption = admin.DEFAULT_PARTNER,
    allow: AllowOption = None,
    db: DbOption = None,
) -> None:
    """Generate a data import key; prints {"data_import_key", ...}. Older keys stay valid.

    Examples:

    \b
      cohortsync braze key generate -w demo
      cohortsync braze key generate -w demo --allow 10.0.0.0/8 --allow 127.0.0.1
    """
    with store_of(db) as store:
        print_json(admin.generate_key(store, workspace=workspace, partner=partner, allow=allow))


@key_app.command("allow")
def key_allow(
    key: Annotated[
        str,
        typer.Argument(
            help="A data import key, a workspace's REST API key, or its fingerprint "
            "('key list' shows them)."
        ),
    ],
    allow: AllowOption = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the allowlist: any source may send the key.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Replace the sources a key may be sent from (--allow, repeatable), or --clear them.

    The next request is checked against the new list.

    Examples:

    \b
      cohortsync braze key allow 3f2a9c01b4de --allow 10.0.0.0/8 --allow ::1
      cohortsync braze key allow 3f2a9c01b4de --clear
    """
    if clear == bool(allow):
        raise ConfigError(
            "key allow needs either --allow (one or more) or --clear",
            hint="e.g. 'cohortsync braze key allow KEY --allow 10.0.0.0/8'",
        )
    with store_of(db) as store:
        print_json(admin.set_key_sources(store, key, None if clear else allow))


@key_app.command("list")
def key_list(
    workspace: WorkspaceOption,
    partner: Annotated[
        str | None,
        typer.Option("--partner", help="Only this partner's data import keys.", show_default=False),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON only, for scripts.")] = False,
    db: DbOption = None,
) -> None:
    """The workspace's REST API key and data import keys, by fingerprint, with their sources.

    Keys are never shown again after they are made; the fingerprint names one
    for 'key allow'. "any" means the key has no allowlist.
    """
    with store_of(db) as store:
        keys = admin.list_workspace_keys(store, workspace=workspace, partner=partner)
    if json:
        print_json(keys)
        return
    for item in keys:
        kind = "REST API key" if item["type"] == "rest_api_key" else f"{item['partner']} key"
        state = "active" if item["active"] else f"invalidated {item['invalidated_at']}"
        sources = ", ".join(item["allowed_sources"] or ["any"])
        typer.echo(f"{item['fingerprint']}  {kind}  {state}  sources: {sources}")


@key_app.command("invalidate")
def key_invalidate(
    key: Annotated[str, typer.Argument(help="The data import key to refuse from now on.")],
    db: DbOption = None,
) -> None:
    """Invalidate a data import key: the next request that sends it gets 401."""
    with store_of(db) as store:
        print_json(admin.invalidate_key(store, key))


@users_app.command("load")
def users_load(
    file: Annotated[
        Path,
        typer.Argument(
            help='NDJSON, one user a line: {"external_id": "u1", "aliases": '
            '[{"alias_label": "email", "alias_name": "a@x.io"}], "device_ids": ["d1"]}; '
            "every field optional, no external_id = anonymous. '-' reads stdin.",
        ),
    ],
    workspace: WorkspaceOption,
    db: DbOption = None,
    continue_on_error: Annotated[
        bool,
        typer.Option(
            "--continue-on-error",
            help="Load the good lines, skip the bad ones and list them (default: all or nothing).",
        ),
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object on one line.")
    ] = False,
) -> None:
    """Create or extend users from an NDJSON file; loading it twice changes nothing.

    The load is all or nothing: one bad line (not JSON, not the shape above,
    an identifier over 512 characters or holding NUL) fails it with one line
    naming the file, the line and the reason, and nothing is loaded; so does
    Ctrl-C. The service keeps answering reads meanwhile; its writes wait
    for the load. With --continue-on-error the good lines are loaded (each
    20,000 lines commit on their own) and the report counts the lines that
    failed and names the first 20 of them, with their reasons; Ctrl-C then
    says how many lines were loaded.

    Examples:

    \b
      cohortsync braze users load users.ndjson --workspace sandbox
      cohortsync braze users load users.ndjson --workspace sandbox --continue-on-error
      generate-users | cohortsync braze users load - --workspace sandbox --json

    Exit codes: 0 loaded (with --continue-on-error: also when some lines
    failed, see lines_failed), 2 a bad line or option (nothing loaded), 6
    interrupted, 1 the store failed.
    """
    started = time.perf_counter()
    source = "stdin" if str(file) == "-" else str(file)
    with store_of(db) as store:
        if str(file) == "-":
            report = admin.load_users_file(
                store,
                workspace=workspace,
                lines=sys.stdin.buffer,
                source=source,
                continue_on_error=continue_on_error,
            )
        else:
            try:
                handle = file.open("rb")
            except OSError as error:
                raise ConfigError(
                    f"cannot read {file}: {error.strerror}", hint="pass an NDJSON file or '-'"
                ) from None
            with handle:
                report = admin.load_users_file(
                    store,
                    workspace=workspace,
                    lines=handle,
                    source=source,
                    continue_on_error=continue_on_error,
                )
    result = {**report.as_dict(), "seconds": round(time.perf_counter() - started, 2)}
    if report.failed:
        listed = "; ".join(f"line {f.line}: {f.reason}" for f in report.failures[:3])
        more = f" (and {report.failed - 3:,} more)" if report.failed > 3 else ""
        sys.stderr.write(
            f"warning: {source}: loaded {report.lines:,} lines, {report.failed:,} failed: "
            f"{listed}{more}\n"
        )
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print_json(result)


@cohorts_app.command("list")
def cohorts_list(workspace: WorkspaceOption, db: DbOption = None) -> None:
    """Cohorts with size and identifiers received / matched / dropped by kind (the match rate)."""
    with store_of(db) as store:
        print_json(admin.list_cohorts(store, workspace=workspace))


@cohorts_app.command("members")
def cohorts_members(
    cohort_id: Annotated[str, typer.Argument(help="The cohort_id the partner sent.")],
    workspace: WorkspaceOption,
    db: DbOption = None,
) -> None:
    """The cohort's users: a sorted JSON array of {"external_id", "aliases", "device_ids"}."""
    with store_of(db) as store:
        print_json(admin.cohort_members(store, cohort_id, workspace=workspace))


@cohorts_app.command("lock")
def cohorts_lock(
    cohort_id: Annotated[str, typer.Argument(help="The cohort to lock.")],
    workspace: WorkspaceOption,
    db: DbOption = None,
) -> None:
    """Lock a cohort: partner calls on it answer 423 "Resource locked" until unlocked."""
    with store_of(db) as store:
        print_json(admin.lock_cohort(store, cohort_id, workspace=workspace))


@cohorts_app.command("unlock")
def cohorts_unlock(
    cohort_id: Annotated[str, typer.Argument(help="The cohort to unlock.")],
    workspace: WorkspaceOption,
    db: DbOption = None,
) -> None:
    """Unlock a cohort: partner calls on it succeed again."""
    with store_of(db) as store:
        print_json(admin.unlock_cohort(store, cohort_id, workspace=workspace))


@db_app.command("current")
def db_current(db: DbOption = None, json: JsonOption = False) -> None:
    """Print the store's schema revision and the newest this cohortsync knows.

    Reads only: it neither creates nor upgrades the store.

    Examples:

    \b
      cohortsync braze db current
      cohortsync braze db current --db postgresql://braze@db.internal/braze --json
    """
    url = db_url(db)
    state = store_status(url)
    if json:
        echo_json_line(status_document(url, state))
    else:
        typer.echo(status_line("Braze store", url, state))


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, json: JsonOption = False) -> None:
    """Upgrade the store to the newest schema; a no-op when it is already there.

    Run it before starting a new release of the service to upgrade at a time of
    your choosing; serve would otherwise do it when it starts. SQLite stores are
    backed up first (the copy is named in the output); on PostgreSQL take a
    pg_dump first. Concurrent openers wait for the upgrade instead of running it twice.

    Examples:

    \b
      cohortsync braze db upgrade
      cohortsync braze db upgrade --db postgresql://braze@db.internal/braze --json
    """
    url = db_url(db)
    store = open_store(url, upgrade=False)
    try:
        outcome = upgrade_store(store)
    finally:
        store.close()
    if json:
        echo_json_line({"database": url, **outcome.to_dict()})
    else:
        typer.echo(outcome_line("Braze store", url, outcome))
