"""`cohortsync auth`: saved Braze authentications (endpoint + data import key)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from cohortsync.catalog.auths import delete_auth, list_auths
from cohortsync.catalog.db import open_catalog
from cohortsync.cli.listing import print_listing
from cohortsync.definitions import Authentication, validated
from cohortsync.definitions.fields import DEFAULT_PARTNER
from cohortsync.export.credentials import create_checked_auth
from cohortsync.secrets import DATA_IMPORT_KEY_ENV, read_data_import_key
from cohortsync.settings import Settings

app = typer.Typer(
    help=(
        "Saved Braze authentications (endpoint + data import key).\n\n"
        "An authentication names a workspace's REST endpoint and its data import key "
        "(Braze: Partner Integrations > Technology Partners > Treasure Data), so that "
        "exports say '--auth NAME' instead of repeating the key. The key is checked "
        "against the endpoint before it is saved, stored encrypted in COHORTSYNC_HOME, "
        "and never printed in full."
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
        str, typer.Option("--partner", help="Partner name in the API paths.")
    ] = DEFAULT_PARTNER,
    json: JsonOption = False,
) -> None:
    """Check the credentials against the endpoint, then save them.

    The check sends an empty membership change ('cohort_changes: []'), which
    changes nothing in Braze; credentials the endpoint refuses are not saved.

    Example: cohortsync auth create braze-prod --endpoint https://rest.iad-01.braze.com
    --data-import-key - < key.txt
    """
    fields = {"name": name, "endpoint": endpoint, "partner": partner}
    auth = validated(
        Authentication, {**fields, "data_import_key": read_data_import_key(data_import_key)}
    )
    record = create_checked_auth(auth, Settings())
    if json:
        typer.echo(orjson.dumps(record.to_dict()).decode())
    else:
        typer.echo(f"saved authentication {name!r} for {auth.endpoint} (key {record.masked_key})")


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
        columns=("name", "endpoint", "partner", "data import key", "created"),
        cells=lambda record: (
            record.name,
            record.endpoint,
            record.partner,
            record.masked_key,
            record.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        ),
        empty="no authentications yet: create one with 'cohortsync auth create'",
    )


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
