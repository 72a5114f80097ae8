"""`cohortsync apply`: declare authentications, queries, segments and activations as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from cohortsync.apply import apply_file
from cohortsync.cli.output import JsonOption


def apply(
    file: Annotated[
        Path,
        typer.Argument(help="The YAML file of definitions, e.g. cohortsync.yaml.", dir_okay=False),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update authentications, saved queries, parents, segments and activations.

    The file lists what should exist; apply changes only what differs, so
    applying the same file twice changes nothing. It never deletes. Secrets
    are never written in the file: a data import key is '${ENV_VAR}',
    read from the environment now. A REST API key (rest_api_key of a
    'type: rest-attribute' authentication) that the file creates or changes
    is checked against its endpoint first, as 'auth create' checks it; a
    refused key applies nothing. Each line of output is one definition:
    '+' created, '~' updated (with the fields), '=' unchanged.

    Example file (see docs/as-code.md for every field):

    \b
      authentications:
        - name: braze-prod
          endpoint: https://rest.iad-01.braze.com
          data_import_key: ${BRAZE_DATA_IMPORT_KEY}
      queries:
        - name: vip
          sql: SELECT external_id AS user_ids FROM customers WHERE ltv > 1000
          export: {auth: braze-prod, cohort_id: vip, operation: mirror}
          schedule: "0 6 * * *"

    \b
    Example:
      BRAZE_DATA_IMPORT_KEY=... cohortsync apply cohortsync.yaml --dry-run
    """
    result = apply_file(file, dry_run=dry_run)
    if as_json:
        typer.echo(orjson.dumps(result.to_dict()).decode())
        return
    for change in result.changes:
        typer.echo(str(change))
    counts = result.summary()
    verb = "would be" if dry_run else ""
    parts = [
        f"{counts['create']} {verb + ' ' if verb else ''}created",
        f"{counts['update']} {verb + ' ' if verb else ''}updated",
        f"{counts['unchanged']} unchanged",
    ]
    prefix = "plan: " if dry_run else ""
    typer.echo(prefix + ", ".join(parts) if result.changes else "the file declares nothing")
