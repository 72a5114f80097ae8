"""`cohortsync auth`: saved Braze authentications (endpoint, key, destination type)."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import orjson
import typer

from cohortsync.catalog.auths import AuthRecord, delete_auth, get_auth, list_auths, rekey_auths
from cohortsync.catalog.db import open_catalog
from cohortsync.cli.listing import print_listing
from cohortsync.definitions import Authentication, validated
from cohortsync.definitions.fields import DEFAULT_PARTNER
from cohortsync.errors import ConfigError
from cohortsync.export.credentials import create_checked_auth, update_checked_auth
from cohortsync.export.rest_attribute import REST_API_KEY_ENV, read_rest_api_key
from cohortsync.secrets import DATA_IMPORT_KEY_ENV, key_file_path, read_data_import_key
from cohortsync.settings import Settings


class AuthTypeChoice(StrEnum):
    """How exports through the authentication deliver."""

    partner_cohort = "partner-cohort"
    rest_attribute = "rest-attribute"


app = typer.Typer(
    help=(
        "Saved Braze authentications (endpoint, key, destination type).\n\n"
        "An authentication names a workspace's REST endpoint and its key, so that "
        "exports say '--auth NAME' instead of repeating the key. Type partner-cohort "
        "(the default) holds a data import key (Braze: Partner Integrations > Technology "
        "Partners > Treasure Data); type rest-attribute holds a REST API key with the "
        "users.track permission (Braze: Settings > APIs and Identifiers). The key is "
        "checked against the endpoint before it is saved, stored encrypted in "
        "COHORTSYNC_HOME, and never printed in full."
    ),
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for this authentication, e.g. 'braze-prod'.")],
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint", help="The workspace's REST endpoint, e.g. https://rest.iad-01.braze.com."
        ),
    ],
    data_import_key: Annotated[
        str | None,
        typer.Option(
            "--data-import-key",
            help=(
                f"The data import key. '-' reads it from stdin; when omitted, "
                f"{DATA_IMPORT_KEY_ENV} is used. Both keep it out of shell history."
            ),
            show_default=False,
        ),
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner",
            help=f"partner-cohort: partner name in the API paths [default: {DEFAULT_PARTNER}].",
            show_default=False,
        ),
    ] = None,
    auth_type: Annotated[
        AuthTypeChoice,
        typer.Option(
            "--type",
            help="How exports through it deliver. partner-cohort: the cohort import API "
            "(a data import key). rest-attribute: a custom attribute through /users/track "
            "(a REST API key with users.track).",
        ),
    ] = AuthTypeChoice.partner_cohort,
    rest_api_key: Annotated[
        str | None,
        typer.Option(
            "--rest-api-key",
            help=f"rest-attribute: '-' reads the REST API key from stdin; when omitted, "
            f"{REST_API_KEY_ENV} is used.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Check the credentials against the endpoint, then save them.

    The check changes nothing in Braze: partner-cohort sends an empty membership
    change ('cohort_changes: []'); rest-attribute sends /users/track one
    update-only attribute for an external id nobody has, which creates nobody.
    Credentials the endpoint refuses are not saved.

    Examples:

    \b
      cohortsync auth create braze-prod --endpoint https://rest.iad-01.braze.com
        --data-import-key - < key.txt

    \b
      COHORTSYNC_REST_API_KEY=... cohortsync auth create braze-rest
        --type rest-attribute --endpoint https://rest.iad-01.braze.com
    """
    if auth_type == AuthTypeChoice.rest_attribute:
        if data_import_key is not None or partner is not None:
            raise ConfigError(
                "--data-import-key and --partner belong to --type partner-cohort",
                hint=f"a rest-attribute authentication takes a REST API key "
                f"(${REST_API_KEY_ENV} or --rest-api-key -)",
            )
        key = read_rest_api_key(rest_api_key)
    else:
        if rest_api_key is not None:
            raise ConfigError(
                "--rest-api-key belongs to --type rest-attribute",
                hint="add --type rest-attribute, or give the data import key "
                f"(${DATA_IMPORT_KEY_ENV} or --data-import-key -)",
            )
        key = read_data_import_key(data_import_key)
    fields = {
        "name": name,
        "endpoint": endpoint,
        "partner": partner or DEFAULT_PARTNER,
        "type": auth_type.value,
    }
    auth = validated(Authentication, {**fields, "data_import_key": key})
    record = create_checked_auth(auth, Settings())
    if json:
        typer.echo(orjson.dumps(record.to_dict()).decode())
    else:
        typer.echo(
            f"saved {auth.type} authentication {name!r} for {auth.endpoint} "
            f"({record.key_label} {record.masked_key})"
        )


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="The saved authentication to change.")],
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint", help="A new REST endpoint of the workspace.", show_default=False
        ),
    ] = None,
    data_import_key: Annotated[
        str | None,
        typer.Option(
            "--data-import-key",
            help=f"partner-cohort: the new data import key; '-' reads it from stdin. When "
            f"omitted, {DATA_IMPORT_KEY_ENV} is used if set, else the saved key is kept.",
            show_default=False,
        ),
    ] = None,
    rest_api_key: Annotated[
        str | None,
        typer.Option(
            "--rest-api-key",
            help=f"rest-attribute: the new REST API key; '-' reads it from stdin. When "
            f"omitted, {REST_API_KEY_ENV} is used if set, else the saved key is kept.",
            show_default=False,
        ),
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option("--partner", help="partner-cohort: a new partner name.", show_default=False),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Replace a saved authentication's key (or endpoint) in place, once the endpoint accepts it.

    This is how a key is rotated without a gap: make the new key in Braze,
    run 'auth update' with it, then invalidate the old key in Braze. The saved
    key keeps working until the new one is checked (the same harmless request
    as 'auth create'); a refused key changes nothing. The saved queries,
    activations and schedules that name the authentication use the new key
    from their next run on. The type of an authentication does not change.

    Examples:

    \b
      cohortsync auth update braze-prod --data-import-key - < new-key.txt

    \b
      COHORTSYNC_REST_API_KEY=... cohortsync auth update braze-rest
    """
    catalog = open_catalog(Settings().catalog_path)
    try:
        saved = get_auth(catalog, name)
    finally:
        catalog.dispose()
    key = _new_key(saved.type, data_import_key, rest_api_key, partner)
    if key is None and endpoint is None and partner is None:
        raise ConfigError(
            f"nothing to change in authentication {name!r}",
            hint="give the new key (an option, '-' for stdin, or its environment variable), "
            "--endpoint or --partner",
        )
    record, changed = update_checked_auth(
        name, Settings(), endpoint=endpoint, partner=partner, key=key
    )
    if json:
        typer.echo(orjson.dumps({**record.to_dict(), "changed": changed}).decode())
    elif changed:
        typer.echo(
            f"updated {record.type} authentication {name!r} for {record.endpoint} "
            f"({record.key_label} {record.masked_key})"
        )
    else:
        typer.echo(f"authentication {name!r} already had that endpoint, partner and key")


def _new_key(
    auth_type: str, data_import_key: str | None, rest_api_key: str | None, partner: str | None
) -> str | None:
    """The new key the options or the environment give for an authentication of ``auth_type``.

    ``None`` keeps the saved key. An option of the other type is refused.
    """
    if auth_type == AuthTypeChoice.rest_attribute.value:
        if data_import_key is not None or partner is not None:
            raise ConfigError(
                "--data-import-key and --partner belong to partner-cohort authentications",
                hint=f"give the new REST API key (${REST_API_KEY_ENV} or --rest-api-key -)",
            )
        if rest_api_key is None and not os.environ.get(REST_API_KEY_ENV, "").strip():
            return None
        return read_rest_api_key(rest_api_key)
    if rest_api_key is not None:
        raise ConfigError(
            "--rest-api-key belongs to rest-attribute authentications",
            hint=f"give the new data import key (${DATA_IMPORT_KEY_ENV} or --data-import-key -)",
        )
    if data_import_key is None and not os.environ.get(DATA_IMPORT_KEY_ENV, "").strip():
        return None
    return read_data_import_key(data_import_key)


@app.command("rekey")
def rekey(json: JsonOption = False) -> None:
    """Re-encrypt every saved key under a new secret key, and retire the old one.

    The saved keys are encrypted with the home's secret key file
    (COHORTSYNC_HOME/secret.key). Re-key when that file may have been copied:
    a new key replaces it, every saved key is re-encrypted with it, and the old
    key no longer reads them. Saved authentications keep their keys and keep
    working; nothing is sent to Braze. Stopped at any point, every saved key
    stays readable, and running it again finishes the job.

    Examples:

    \b
      cohortsync auth rekey
    """
    settings = Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        count = rekey_auths(catalog, settings)
    finally:
        catalog.dispose()
    path = key_file_path(settings.home_dir)
    if json:
        typer.echo(orjson.dumps({"re_encrypted": count, "key_file": str(path)}).decode())
    else:
        typer.echo(f"re-encrypted {count} saved key(s) under a new secret key in {path}")


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List saved authentications; keys are masked (****abcd)."""
    catalog = open_catalog(Settings().catalog_path)
    try:
        records = list_auths(catalog)
    finally:
        catalog.dispose()
    if json:
        typer.echo(orjson.dumps([record.to_dict() for record in records]).decode())
        return
    print_listing(
        records,
        columns=("name", "type", "endpoint", "partner", "key", "created"),
        cells=lambda record: (
            record.name,
            record.type,
            record.endpoint,
            record.partner if record.type == "partner-cohort" else "-",
            record.masked_key,
            record.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        ),
        empty="no authentications yet: create one with 'cohortsync auth create'",
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The authentication to show.")],
    json: JsonOption = False,
) -> None:
    """Show one saved authentication: its type, endpoint and masked key."""
    catalog = open_catalog(Settings().catalog_path)
    try:
        record = get_auth(catalog, name)
    finally:
        catalog.dispose()
    if json:
        typer.echo(orjson.dumps(record.to_dict()).decode())
        return
    for label, value in _shown(record):
        typer.echo(f"{label:<16}{value}")


def _shown(record: AuthRecord) -> list[tuple[str, str]]:
    rows = [("name", record.name), ("type", record.type), ("endpoint", record.endpoint)]
    if record.type == "partner-cohort":
        rows.append(("partner", record.partner))
    rows += [
        (record.key_label, record.masked_key),
        ("created", record.created_at.strftime("%Y-%m-%d %H:%M UTC")),
    ]
    return rows


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The authentication to delete.")],
    json: JsonOption = False,
) -> None:
    """Delete a saved authentication (exports that name it will fail until re-created)."""
    catalog = open_catalog(Settings().catalog_path)
    try:
        delete_auth(catalog, name)
    finally:
        catalog.dispose()
    if json:
        typer.echo(orjson.dumps({"deleted": name}).decode())
    else:
        typer.echo(f"deleted authentication {name!r}")
