"""`cohortsync braze segment`: segments of a workspace, from cohort, identity and attribute filters.

Thin commands over :mod:`cohortsync.braze.admin`; each prints JSON. A
segment's filter is built from options (``--includes-cohort``,
``--external-id``, ``--attribute``, combined by ``--match``) or read whole
from a JSON file (``--filter-file``), the tree the dashboard's builder
saves; see docs/braze-service.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from cohortsync.braze import admin, segments
from cohortsync.cli.braze_common import DbOption, WorkspaceOption, print_json, store_of
from cohortsync.errors import ConfigError

segment_app = typer.Typer(
    help=(
        "Segments: users chosen by the partner cohorts they are in, their external id and "
        "their custom attributes.\n\n"
        "Example: segment create vip -w acme --includes-cohort vip --attribute 'plan equals gold'"
    ),
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Segment name or id.")]


class ExternalId(StrEnum):
    present = "present"
    absent = "absent"


class Match(StrEnum):
    all = "all"
    any = "any"


IncludesOption = Annotated[
    list[str] | None,
    typer.Option("--includes-cohort", help="Users in this cohort (repeatable)."),
]
ExcludesOption = Annotated[
    list[str] | None,
    typer.Option("--excludes-cohort", help="Users not in this cohort (repeatable)."),
]
ExternalIdOption = Annotated[
    ExternalId | None,
    typer.Option("--external-id", help="Only identified (present) or anonymous (absent) users."),
]
AttributeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--attribute",
        help=(
            "A custom attribute filter 'NAME OPERATOR [VALUE]' (repeatable), e.g. "
            "'plan equals gold', 'age greater_than 30', 'phone exists'. "
            f"Operators: {', '.join(segments.OPERATORS)}. "
            "VALUE is read as JSON when it parses (30, true), else as text."
        ),
    ),
]
IncludesValueOption = Annotated[
    list[str] | None,
    typer.Option(
        "--attribute-includes",
        help="ATTR=VALUE: users whose array attribute ATTR holds the text VALUE (repeatable), "
        "e.g. cohorts=vip for a cohort delivered as an attribute.",
    ),
]
IsTrueOption = Annotated[
    list[str] | None,
    typer.Option("--attribute-is-true", help="Users whose boolean attribute is true (repeatable)."),
]
IsFalseOption = Annotated[
    list[str] | None,
    typer.Option(
        "--attribute-is-false", help="Users whose boolean attribute is false (repeatable)."
    ),
]
ExistsOption = Annotated[
    list[str] | None,
    typer.Option("--attribute-exists", help="Users who have this attribute (repeatable)."),
]
MatchOption = Annotated[Match, typer.Option(help="Combine the filters with AND (all) or OR (any).")]
FilterFileOption = Annotated[
    Path | None,
    typer.Option(
        "--filter-file",
        help="The whole filter tree as JSON ('-' reads stdin), instead of the filter options.",
        show_default=False,
    ),
]


def attribute_option(text: str) -> dict[str, Any]:
    """``'plan equals gold'`` as a custom attribute filter; ConfigError naming the option."""
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise ConfigError(
            f"--attribute {text!r}: expected 'NAME OPERATOR [VALUE]'",
            hint="e.g. --attribute 'plan equals gold' or --attribute 'phone exists'",
        )
    name, operator = parts[0], parts[1]
    if operator not in segments.OPERATORS:
        raise ConfigError(
            f"--attribute {text!r}: unknown operator {operator!r}",
            hint=f"use one of {', '.join(segments.OPERATORS)}",
        )
    if len(parts) == 2:
        return segments.attribute_filter(name, operator)
    try:
        value = orjson.loads(parts[2])
    except orjson.JSONDecodeError:
        value = parts[2]
    return segments.attribute_filter(name, operator, value)


def includes_option(text: str) -> dict[str, Any]:
    """``'cohorts=vip'`` as "array attribute includes the text value"."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value:
        raise ConfigError(
            f"--attribute-includes {text!r}: expected ATTR=VALUE",
            hint="e.g. --attribute-includes cohorts=vip",
        )
    return segments.attribute_filter(name.strip(), "includes_value", value)


@dataclass(frozen=True)
class AttributeFlags:
    """The shorthand attribute options of ``create`` and ``update``."""

    includes: list[str] | None = None
    is_true: list[str] | None = None
    is_false: list[str] | None = None
    exists: list[str] | None = None

    def filters(self) -> list[dict[str, Any]]:
        found = [includes_option(text) for text in self.includes or []]
        found += [segments.attribute_filter(name, "equals", True) for name in self.is_true or []]
        found += [segments.attribute_filter(name, "equals", False) for name in self.is_false or []]
        found += [segments.attribute_filter(name, "exists") for name in self.exists or []]
        return found


def read_filter_file(path: Path) -> Any:
    """The JSON tree of ``--filter-file``; ConfigError naming the file when it cannot be read."""
    source = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read {source}: {error.strerror}", hint="pass a JSON file or '-'"
        ) from error
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ConfigError(
            f"{source} is not JSON: {error}",
            hint='a filter is e.g. {"type": "cohort", "cohort_id": "vip", "includes": true}',
        ) from error


def filter_of(
    *,
    includes: list[str] | None,
    excludes: list[str] | None,
    external_id: ExternalId | None,
    attributes: list[str] | None,
    flags: AttributeFlags,
    match: Match,
    filter_file: Path | None,
) -> Any:
    """The filter tree the options describe, or None when they describe none."""
    parts = [segments.cohort_filter(cohort) for cohort in includes or []]
    parts += [segments.cohort_filter(cohort, includes=False) for cohort in excludes or []]
    if external_id is not None:
        parts.append(segments.external_id_filter(present=external_id is ExternalId.present))
    parts += [attribute_option(text) for text in attributes or []]
    parts += flags.filters()
    if filter_file is not None:
        if parts:
            raise ConfigError(
                "--filter-file replaces the filter options; pass one or the other",
                hint="put every filter in the file, or leave --filter-file out",
            )
        return read_filter_file(filter_file)
    if not parts:
        return None
    return segments.combine("and" if match is Match.all else "or", parts)


@segment_app.command("create")
def segment_create(
    name: Annotated[str, typer.Argument(help="Segment name, unique in the workspace.")],
    workspace: WorkspaceOption,
    includes_cohort: IncludesOption = None,
    excludes_cohort: ExcludesOption = None,
    external_id: ExternalIdOption = None,
    attribute: AttributeOption = None,
    attribute_includes: IncludesValueOption = None,
    attribute_is_true: IsTrueOption = None,
    attribute_is_false: IsFalseOption = None,
    attribute_exists: ExistsOption = None,
    match: MatchOption = Match.all,
    filter_file: FilterFileOption = None,
    db: DbOption = None,
) -> None:
    """Create a segment from cohort, external id and custom attribute filters.

    Examples:

    \b
      cohortsync braze segment create vip -w acme --includes-cohort vip --external-id present
      cohortsync braze segment create gold -w acme --attribute 'plan equals gold' \\
        --attribute 'age greater_than 30' --match any
      cohortsync braze segment create vip-attr -w acme --attribute-includes cohorts=vip
      cohortsync braze segment create custom -w acme --filter-file filter.json
    """
    tree = filter_of(
        includes=includes_cohort,
        excludes=excludes_cohort,
        external_id=external_id,
        attributes=attribute,
        flags=AttributeFlags(
            attribute_includes, attribute_is_true, attribute_is_false, attribute_exists
        ),
        match=match,
        filter_file=filter_file,
    )
    if tree is None:
        raise ConfigError(
            f"segment {name!r} has no filter",
            hint="pass --includes-cohort, --excludes-cohort, --external-id, --attribute "
            "(or an --attribute-... shorthand) or --filter-file",
        )
    with store_of(db) as store:
        print_json(admin.create_segment(store, name, workspace=workspace, filter=tree))


@segment_app.command("update")
def segment_update(
    segment: NameArgument,
    workspace: WorkspaceOption,
    rename: Annotated[
        str | None, typer.Option("--rename", help="The segment's new name.", show_default=False)
    ] = None,
    includes_cohort: IncludesOption = None,
    excludes_cohort: ExcludesOption = None,
    external_id: ExternalIdOption = None,
    attribute: AttributeOption = None,
    attribute_includes: IncludesValueOption = None,
    attribute_is_true: IsTrueOption = None,
    attribute_is_false: IsFalseOption = None,
    attribute_exists: ExistsOption = None,
    match: MatchOption = Match.all,
    filter_file: FilterFileOption = None,
    db: DbOption = None,
) -> None:
    """Rename a segment and / or replace its whole filter (given filters replace the old ones).

    Campaigns that target it reach the new filter's users at their next launch.
    """
    tree = filter_of(
        includes=includes_cohort,
        excludes=excludes_cohort,
        external_id=external_id,
        attributes=attribute,
        flags=AttributeFlags(
            attribute_includes, attribute_is_true, attribute_is_false, attribute_exists
        ),
        match=match,
        filter_file=filter_file,
    )
    if tree is None and rename is None:
        raise ConfigError("nothing to update", hint="pass --rename and / or filters (see --help)")
    with store_of(db) as store:
        print_json(
            admin.update_segment(store, segment, workspace=workspace, name=rename, filter=tree)
        )


@segment_app.command("show")
def segment_show(segment: NameArgument, workspace: WorkspaceOption, db: DbOption = None) -> None:
    """A segment: its filter, the filter in words, its size now, when it changed."""
    with store_of(db) as store:
        print_json(admin.segment_details(store, segment, workspace=workspace))


@segment_app.command("delete")
def segment_delete(segment: NameArgument, workspace: WorkspaceOption, db: DbOption = None) -> None:
    """Delete a segment; refused while a campaign or Canvas targets it."""
    with store_of(db) as store:
        print_json(admin.delete_segment(store, segment, workspace=workspace))


@segment_app.command("members")
def segment_members(segment: NameArgument, workspace: WorkspaceOption, db: DbOption = None) -> None:
    """The segment's users, in the shape of 'cohorts members'."""
    with store_of(db) as store:
        print_json(admin.segment_members(store, segment, workspace=workspace))


@segment_app.command("list")
def segment_list(workspace: WorkspaceOption, db: DbOption = None) -> None:
    """The workspace's segments with their filters in words."""
    with store_of(db) as store:
        print_json(admin.list_segments(store, workspace=workspace))
