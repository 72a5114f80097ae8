"""`cohortsync export`: export a query result to a Braze cohort."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from cohortsync.cli.export_options import (
    AttributeModeChoice,
    CohortNameOption,
    DestinationChoice,
    LockTimeoutOption,
    OperationChoice,
    SkipInvalidOption,
    ThreadsOption,
)
from cohortsync.cli.files_option import AllowFilesOption, open_files
from cohortsync.cli.progress import console_reporter
from cohortsync.cli.run_report import render_report
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import destination_for_auth
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT
from cohortsync.export.rest_attribute import REST_API_KEY_ENV, read_rest_api_key
from cohortsync.export.run import run_export
from cohortsync.export.spec import (
    DEFAULT_PARTNER,
    DEFAULT_THREADS,
    PARTNER_COHORT,
    REST_ATTRIBUTE,
    Destination,
    DestinationType,
    ExportSpec,
    MirrorOptions,
    Source,
)
from cohortsync.secrets import DATA_IMPORT_KEY_ENV, read_data_import_key
from cohortsync.settings import Settings
from cohortsync.textfiles import read_text

if TYPE_CHECKING:  # rich is imported when the report is drawn, not by --json
    from rich.console import Console


def export(
    query: Annotated[
        str | None, typer.Option("--query", help="SQL whose result holds the identifiers.")
    ] = None,
    query_file: Annotated[
        Path | None,
        typer.Option("--query-file", help="A file holding the SQL.", dir_okay=False),
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="Export a whole table (name or schema.name).")
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option("--auth", help="A saved authentication (see 'cohortsync auth create')."),
    ] = None,
    destination_type: Annotated[
        DestinationChoice | None,
        typer.Option(
            "--type",
            help=(
                "partner-cohort: Braze's partner cohort import API (a data import key); "
                "rest-attribute: a custom attribute through /users/track (a REST API key) "
                "[default: the type of --auth, else partner-cohort]."
            ),
            show_default=False,
        ),
    ] = None,
    rest_api_key: Annotated[
        str | None,
        typer.Option(
            "--rest-api-key",
            help=f"rest-attribute: '-' reads the REST API key from stdin [default: "
            f"${REST_API_KEY_ENV}].",
            show_default=False,
        ),
    ] = None,
    attribute_mode: Annotated[
        AttributeModeChoice,
        typer.Option(
            "--attribute-mode",
            help=(
                "rest-attribute: array (the cohort id in an array attribute, added and "
                "removed with Braze's add/remove operators) or boolean (one attribute per "
                "cohort, true on entry, false on exit)."
            ),
        ),
    ] = AttributeModeChoice.array,
    attribute: Annotated[
        str | None,
        typer.Option(
            "--attribute",
            help="rest-attribute: the custom attribute [default: cohorts, or cohort_<cohort id> "
            "in boolean mode].",
            show_default=False,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="REST endpoint, when not using --auth."),
    ] = None,
    data_import_key: Annotated[
        str | None,
        typer.Option(
            "--data-import-key",
            help=f"Key for --endpoint; '-' reads stdin; default ${DATA_IMPORT_KEY_ENV}.",
            show_default=False,
        ),
    ] = None,
    cohort_id: Annotated[
        str, typer.Option("--cohort-id", help="The cohort's id in Braze (unique per workspace).")
    ] = "",
    cohort_name: CohortNameOption = None,
    operation: Annotated[
        OperationChoice,
        typer.Option(
            "--operation",
            help=(
                "add or remove the identifiers, or mirror: keep the cohort equal to the "
                "result by sending only who entered and who left since the last sync."
            ),
        ),
    ] = OperationChoice.add,
    alias_column: Annotated[
        str | None,
        typer.Option(
            "--alias-column",
            help="A result column sent as user aliases: its name is the alias_label.",
        ),
    ] = None,
    threads: ThreadsOption = DEFAULT_THREADS,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner", help=f"Partner name in the API paths [default: {DEFAULT_PARTNER}]."
        ),
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse",
            help="Warehouse URL; default $COHORTSYNC_WAREHOUSE or the embedded DuckDB file.",
        ),
    ] = None,
    allow_files: AllowFilesOption = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="mirror: accept a result with no identifiers (empties the cohort).",
        ),
    ] = False,
    max_remove_pct: Annotated[
        float,
        typer.Option(
            "--max-remove-pct",
            min=0,
            max=100,
            help="mirror: fail rather than remove more than this % of the tracked members.",
        ),
    ] = DEFAULT_MAX_REMOVE_PCT,
    full_resync: Annotated[
        bool,
        typer.Option(
            "--full-resync",
            help="mirror: re-send every member and every known exit (when Braze may have drifted).",
        ),
    ] = False,
    lock_timeout: LockTimeoutOption = DEFAULT_LOCK_TIMEOUT,
    skip_invalid: SkipInvalidOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help=(
                "Read and plan, send nothing: print counts and the first body "
                "(mirror: entries, exits and the first identifiers of each)."
            ),
        ),
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")
    ] = False,
) -> None:
    """Export a query result to a Braze cohort.

    The result's identifier columns are 'user_ids' (external ids), 'device_ids',
    and the --alias-column; they must be strings. NULL and empty values are
    skipped, duplicates are sent once, other columns are ignored with a warning.
    Identifiers Braze would refuse (over 512 characters or 997 bytes, control
    characters such as a tab or NUL) fail the run before the first request,
    naming the first one and its row; --skip-invalid skips and counts them
    instead (the report names the first few), and --dry-run shows them.
    The cohort is created or renamed first, then its members are sent in
    requests of at most 1,000 identifiers, --threads at a time, retrying 429,
    5xx, 423 and network errors. --threads auto (the default) grows the
    requests in flight while the answers stay fast and halves them on a 429
    or a slowdown; every run of this home against one workspace (endpoint and
    key) shares one rate budget, learned from the server's rate-limit headers.

    With --operation mirror the cohort is kept equal to the latest result: the
    first run adds everyone, later runs send only entries and exits, computed
    against a snapshot of what this system added (members someone else added
    are never removed). Before any request, a result with no identifiers fails
    unless --allow-empty, and removing more than --max-remove-pct of the
    tracked members fails unless raised.

    With --type rest-attribute the cohort is delivered as a custom attribute
    through Braze's /users/track, with a REST API key (users.track permission)
    from $COHORTSYNC_REST_API_KEY or --rest-api-key - (stdin): in array mode the
    cohort id is added to or removed from the --attribute array (cohorts), in
    boolean mode the --attribute (cohort_<cohort id>) is set true or false.
    Every object carries _update_existing_only, so no user is created; 75
    objects per request. Device ids cannot be addressed there: a result of only
    device_ids fails, a mixed one skips and counts them. The answers' non-fatal
    errors are counted in the report (match). A saved authentication of this
    type ('cohortsync auth create NAME --type rest-attribute') is used with
    --auth NAME, without --type.

    Runs are recorded ('cohortsync runs list'). One run per cohort at a time: a
    second waits up to --lock-timeout. A run stopped by SIGTERM or Ctrl-C
    finishes its requests in flight and exits 6; a stopped or killed run is
    continued by running the same command again (or 'cohortsync runs resume').

    Examples:

    \b
      cohortsync export --auth braze-prod --cohort-id vip \\
        --query "SELECT external_id AS user_ids FROM users"
      cohortsync export --auth braze-prod --cohort-id vip --operation remove \\
        --table vip_emails --alias-column email --dry-run
      cohortsync export --auth braze-prod --cohort-id active --operation mirror \\
        --query "SELECT external_id AS user_ids FROM users WHERE active"
      cohortsync export --endpoint https://rest.iad-01.braze.com --data-import-key - \\
        --cohort-id vip --table vip_users --json < key.txt
      cohortsync export --auth braze-prod --cohort-id vip --table raw_ids --skip-invalid
      COHORTSYNC_REST_API_KEY=... cohortsync export --type rest-attribute \\
        --endpoint https://rest.iad-01.braze.com --cohort-id vip --operation mirror \\
        --query "SELECT external_id AS user_ids FROM users WHERE vip"

    Retries and timeouts come from the environment: COHORTSYNC_HTTP_MAX_ATTEMPTS
    (default 8, the first try included), COHORTSYNC_HTTP_BACKOFF_BASE and
    COHORTSYNC_HTTP_BACKOFF_MAX (0.5 s doubling up to 30 s, with jitter; a
    longer Retry-After wins) and COHORTSYNC_HTTP_TIMEOUT (60 s per request).

    Exit codes: 0 success, 2 bad usage or configuration, 3 the query or source
    failed (or holds identifiers Braze would refuse), 4 the destination refused
    (400/401), 5 retries exhausted, 6 interrupted (resumable), 1 another
    failure (a mirror guard, a busy cohort).
    """
    logging.basicConfig(stream=sys.stderr, format="warning: %(message)s", level=logging.WARNING)
    open_files(allow_files)
    settings = Settings()
    source = Source(
        sql=_query_text(query, query_file, table),
        table=table,
        warehouse_url=warehouse,
    )
    kind = _destination_kind(settings, auth, destination_type)
    if kind == REST_ATTRIBUTE:
        if cohort_name is not None:
            raise ConfigError(
                "--cohort-name names a partner cohort; an attribute export has no name to send",
                hint="leave it out: the cohort id is the value of the attribute (--attribute)",
            )
        destination = _attribute_destination(
            settings,
            auth,
            endpoint,
            data_import_key,
            partner,
            rest_api_key,
            attribute_mode,
            attribute,
        )
    else:
        if rest_api_key is not None or attribute is not None:
            raise ConfigError(
                "--rest-api-key and --attribute belong to --type rest-attribute",
                hint="add --type rest-attribute, or leave them out for a partner cohort",
            )
        destination = _destination(settings, auth, endpoint, data_import_key, partner)
    spec = ExportSpec(
        source=source,
        destination=destination,
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        operation=operation.value,
        alias_column=alias_column,
        threads=threads,
        mirror=MirrorOptions(
            allow_empty=allow_empty, max_remove_pct=max_remove_pct, full_resync=full_resync
        ),
        skip_invalid=skip_invalid,
    )
    if not cohort_id:
        raise ConfigError("missing --cohort-id", hint="give the cohort's id in Braze")
    report = run_export(
        spec,
        dry_run=dry_run,
        reporter=console_reporter(None),  # on stderr, so also with --json
        lock_timeout=lock_timeout,
    )
    if json:
        typer.echo(orjson.dumps(report.to_dict()).decode())
    else:
        from rich.console import Console

        console = Console()
        render_report(console, report)
        render_mirror(console, report.mirror or (report.plan or {}).get("mirror"))


def render_mirror(console: Console, mirror: dict[str, Any] | None) -> None:
    """The mirror diff for people: counts, then the first identifiers of each side."""
    if not mirror:
        return
    what = "first run" if mirror["first_run"] else "diff against the last sync"
    if mirror["full_resync"]:
        what += ", full resync"
    console.print(
        f"mirror ({what}): {mirror['result_members']:,} in the result, "
        f"{mirror['previous_members']:,} tracked before; {mirror['entries']:,} entries, "
        f"{mirror['exits']:,} exits, {mirror['unchanged']:,} unchanged; "
        f"sending {mirror['adds']:,} adds and {mirror['removes']:,} removes"
    )
    for side, key in (("adds", "sample_adds"), ("removes", "sample_removes")):
        if mirror[key]:
            first = ", ".join(f"{kind}:{value}" for kind, value in mirror[key])
            console.print(f"  first {side}: {first}")


def _query_text(query: str | None, query_file: Path | None, table: str | None) -> str | None:
    given = [
        flag
        for flag, value in (("--query", query), ("--query-file", query_file), ("--table", table))
        if value is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of --query, --query-file or --table"
            + (f" (got {', '.join(given)})" if given else ""),
        )
    if query_file is not None:
        return read_text(query_file, f"the query file {query_file}")
    return query


def _destination_kind(
    settings: Settings, auth: str | None, given: DestinationChoice | None
) -> DestinationType:
    """The export's destination type: the saved authentication's, or ``--type``.

    Raises:
        ConfigError: ``--type`` names another type than the authentication's.
    """
    if auth is None:
        return given.value if given is not None else PARTNER_COHORT
    saved = destination_for_auth(auth, settings).type
    if given is not None and given.value != saved:
        raise ConfigError(
            f"--type {given.value} does not match the authentication {auth!r}, which is {saved}",
            hint=f"leave --type out, or use an authentication of type {given.value} "
            "(see 'cohortsync auth list')",
        )
    return saved


def _attribute_destination(
    settings: Settings,
    auth: str | None,
    endpoint: str | None,
    data_import_key: str | None,
    partner: str | None,
    rest_api_key: str | None,
    mode: AttributeModeChoice,
    attribute: str | None,
) -> Destination:
    """A ``rest-attribute`` destination: a saved authentication's, or the command line's."""
    if auth is not None and (endpoint is not None or rest_api_key is not None):
        raise ConfigError(
            "give either --auth or --endpoint with the REST API key, not both",
            hint=f"the authentication {auth!r} holds its endpoint and key",
        )
    if data_import_key is not None or partner is not None:
        raise ConfigError(
            "--data-import-key and --partner belong to --type partner-cohort",
            hint=f"a rest-attribute export takes a REST API key (${REST_API_KEY_ENV} "
            "or --rest-api-key -)",
        )
    if auth is not None:
        saved = destination_for_auth(auth, settings)
        return replace(saved, attribute_mode=mode.value, attribute=attribute)
    if endpoint is None:
        raise ConfigError(
            "no destination given",
            hint="give --auth NAME, or --endpoint URL, the workspace's REST endpoint",
        )
    return Destination(
        endpoint=endpoint.rstrip("/"),
        data_import_key=read_rest_api_key(rest_api_key),
        partner_api_key="",
        type=REST_ATTRIBUTE,
        attribute_mode=mode.value,
        attribute=attribute,
    )


def _destination(
    settings: Settings,
    auth: str | None,
    endpoint: str | None,
    data_import_key: str | None,
    partner: str | None,
) -> Destination:
    if auth is not None:
        if endpoint is not None or data_import_key is not None:
            raise ConfigError("give either --auth or --endpoint with --data-import-key, not both")
        destination = destination_for_auth(auth, settings)
        if partner is not None and partner != destination.partner:
            destination = Destination(
                endpoint=destination.endpoint,
                data_import_key=destination.data_import_key,
                partner_api_key=destination.partner_api_key,
                partner=partner,
                auth_name=auth,
            )
        return destination
    if endpoint is None:
        raise ConfigError(
            "no destination given",
            hint="give --auth NAME, or --endpoint URL with --data-import-key KEY",
        )
    return Destination(
        endpoint=endpoint.rstrip("/"),
        data_import_key=read_data_import_key(data_import_key),
        partner_api_key=settings.partner_api_key_for(endpoint),
        partner=partner or DEFAULT_PARTNER,
    )
