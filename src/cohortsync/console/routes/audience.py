"""Audience Studio: parent segments, the segment builder with its live count, Create Activation.

Every save builds the same definitions as the command line
(:class:`~cohortsync.definitions.Parent`, ``Segment``, ``Activation``) and
calls the same library functions (``cohortsync audience parent create``,
``segment create|update``, ``activation create|update``), so the checks
against the warehouse and the catalog are the library's.

The segment builder is a form of groups of rules: the segment matches all
(AND) or any (OR) of its groups, each group all or any of its rules. Adding
or removing a rule or a group posts the form and re-renders the builder;
typing posts it to the live count, which compiles the rules against the
parent table and counts the rows in the warehouse. The rules it builds are
the JSON of :mod:`cohortsync.audience.rules`; a value typed in a form is text,
so it is read as the column's family expects (a number for a numeric column)
and the compiler refuses what still does not fit, next to its rule.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from cohortsync.audience import activations, parents, segments
from cohortsync.audience.compile import RuleError, compile_rules
from cohortsync.audience.parents import ColumnInfo
from cohortsync.audience.rules import NULL_TESTS, And, Condition, Or, parse_rules
from cohortsync.catalog.audiences import SavedActivation, SavedParent
from cohortsync.catalog.auths import list_auths
from cohortsync.console.context import Console, console_of
from cohortsync.console.launches import launched
from cohortsync.definitions import Activation, Parent, Segment, field_problems
from cohortsync.definitions.activation import DEVICE_IDS, USER_IDS
from cohortsync.definitions.fields import (
    DEFAULT_MAX_REMOVE_PCT,
    DEFAULT_THREADS,
    MAX_THREADS,
    OPERATIONS,
)
from cohortsync.errors import CohortsyncError, SourceError
from cohortsync.jobs.cron import check_cron, next_slot
from cohortsync.web.pages import redirect

router = APIRouter()

# How each operator reads in the builder.
OPERATOR_TEXT = {
    "=": "equals",
    "!=": "does not equal",
    "<": "is less than",
    "<=": "is at most",
    ">": "is greater than",
    ">=": "is at least",
    "in": "is one of",
    "between": "is between",
    "like": "matches",
    "is null": "is empty",
    "is not null": "is not empty",
}
JOIN_TEXT = {"and": "all", "or": "any"}
NEXT_RUNS = 3
ALIAS_OUTPUT = "alias"  # the mapping row's choice for "the alias column's name"


# --- home ----------------------------------------------------------------------------


@router.get("/audience")
def home(request: Request, console: Console = Depends(console_of), deleted: str = "") -> Response:
    settings = console.settings
    all_segments = segments.list_segments(settings=settings)
    all_activations = activations.list_activations(settings=settings)
    # One read of the history for the whole list, however many activations are saved.
    latest = activations.latest_activation_runs(
        [activation.name for activation in all_activations], settings=settings
    )
    return console.pages.render(
        request,
        "console/audience_home.html",
        {
            "parents": parents.list_parents(settings=settings),
            "segments": all_segments,
            "activations": all_activations,
            "segment_count": _count_by(all_segments, "parent"),
            "activation_count": _count_by(all_activations, "segment"),
            "last_runs": latest,
            "deleted": deleted,
        },
    )


def _count_by(rows: list[Any], attribute: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        key = getattr(row, attribute)
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- parent segments -----------------------------------------------------------------


@router.get("/audience/parents/new")
def new_parent_form(request: Request, console: Console = Depends(console_of)) -> Response:
    return _parent_form(request, console, {})


@router.get("/audience/parents/columns")
def table_columns_fragment(
    request: Request, console: Console = Depends(console_of), table: str = "", key: str = ""
) -> Response:
    """The chosen table's columns and the key column select, as the table is typed."""
    return console.pages.render(
        request, "console/_audience_columns.html", _columns_context(console, table.strip(), key)
    )


@router.post("/audience/parents/new")
def create_parent(
    request: Request,
    console: Console = Depends(console_of),
    name: str = Form(""),
    table: str = Form(""),
    key: str = Form(""),
    description: str = Form(""),
) -> Response:
    values = {
        "name": name.strip(),
        "table": table.strip(),
        "key": key.strip(),
        "description": description.strip() or None,
    }
    try:
        parent = Parent.model_validate(values)
    except ValidationError as error:
        return _parent_form(request, console, values, errors=field_problems(error), status=422)
    try:
        parents.create_parent(
            parent.name,
            parent.table,
            parent.key,
            description=parent.description,
            settings=console.settings,
        )
    except SourceError as error:
        return _parent_form(request, console, values, errors={"table": _said(error)}, status=422)
    except RuleError as error:
        return _parent_form(request, console, values, errors={"key": _said(error)}, status=422)
    except CohortsyncError as error:
        return _parent_form(request, console, values, failure=error, status=422)
    return redirect(request, f"/audience/parents/{values['name']}?saved=1")


@router.get("/audience/parents/{name}")
def parent_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    columns, failure = _columns_of(parent, console)
    return console.pages.render(
        request,
        "console/audience_parent.html",
        {
            "parent": parent,
            "columns": columns,
            "failure": failure,
            "segments": segments.list_segments(parent=name, settings=console.settings),
            "saved": saved,
        },
    )


@router.get("/audience/parents/{name}/delete")
def confirm_delete_parent(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    return _confirm_delete(request, console, "parent", name)


@router.post("/audience/parents/{name}/delete")
def delete_parent(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    try:
        parents.delete_parent(name, settings=console.settings)
    except CohortsyncError as error:
        return _confirm_delete(request, console, "parent", name, failure=error, status=409)
    return redirect(request, f"/audience?deleted=parent+{name}")


def _parent_form(
    request: Request,
    console: Console,
    values: Mapping[str, Any],
    *,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    try:
        tables = parents.warehouse_tables(settings=console.settings)
    except CohortsyncError:
        tables = []
    context = {
        "values": values,
        "errors": errors or {},
        "failure": failure,
        "tables": tables,
        **_columns_context(console, values.get("table") or "", values.get("key") or ""),
    }
    return console.pages.render(
        request, "console/audience_parent_new.html", context, status_code=status
    )


def _columns_context(console: Console, table: str, key: str) -> dict[str, Any]:
    columns: list[ColumnInfo] = []
    table_error = None
    if table:
        try:
            columns = parents.table_columns(table, settings=console.settings)
        except CohortsyncError as error:
            table_error = error
    known: list[str] = []
    if table_error is not None:
        with suppress(CohortsyncError):
            known = parents.warehouse_tables(settings=console.settings)
    return {
        "table": table,
        "columns": columns,
        "table_error": table_error,
        "known_tables": known,
        "key": key,
    }


def _columns_of(
    parent: SavedParent, console: Console
) -> tuple[list[ColumnInfo], CohortsyncError | None]:
    try:
        return parents.parent_columns(parent, console.settings), None
    except CohortsyncError as error:
        return [], error


def _said(error: CohortsyncError) -> str:
    """An error as one line under a field: the message and what to do."""
    text = error.message + (f" ({error.hint})" if error.hint else "")
    return text[:1].upper() + text[1:]


# --- the segment builder ---------------------------------------------------------------


@dataclass
class RuleRow:
    """One rule as the form holds it: an attribute, an operator and the value typed."""

    column: str = ""
    op: str = "="
    value: str = ""


@dataclass
class Group:
    join: str = "and"
    rules: list[RuleRow] = field(default_factory=lambda: [RuleRow()])


@dataclass
class Builder:
    """The builder's state: groups combined with ``join``, each of rules."""

    join: str = "and"
    groups: list[Group] = field(default_factory=lambda: [Group()])


@dataclass
class Evaluation:
    """What the builder's rules are now: their JSON, each rule's problem, the count."""

    rules: dict[str, Any] | None = None
    problems: dict[str, str] = field(default_factory=dict)  # "g-r" -> message
    incomplete: bool = False
    count: int | None = None
    failure: CohortsyncError | None = None


_RULE_FIELD = re.compile(r"rule-(\d+)-(\d+)-(column|op|value)")
_GROUP_FIELD = re.compile(r"group-(\d+)-join")


def builder_from_form(form: FormData) -> Builder:
    """The builder as posted: ``join``, ``group-G-join``, ``rule-G-R-column|op|value``."""
    groups: dict[int, dict[int, dict[str, str]]] = {}
    joins: dict[int, str] = {}
    for key, raw in form.multi_items():
        value = raw if isinstance(raw, str) else ""
        if match := _RULE_FIELD.fullmatch(key):
            g, r, part = int(match[1]), int(match[2]), match[3]
            groups.setdefault(g, {}).setdefault(r, {})[part] = value
        elif match := _GROUP_FIELD.fullmatch(key):
            joins[int(match[1])] = value
            groups.setdefault(int(match[1]), {})
    built = [
        Group(
            join=_join(joins.get(g)),
            rules=[
                RuleRow(row.get("column", ""), row.get("op", "="), row.get("value", ""))
                for _, row in sorted(groups[g].items())
            ],
        )
        for g in sorted(groups)
    ]
    top = form.get("join")
    return Builder(join=_join(top if isinstance(top, str) else None), groups=built)


def _join(value: str | None) -> str:
    return "or" if value == "or" else "and"


def builder_from_rules(data: dict[str, Any]) -> Builder | None:
    """Saved rules as the builder shows them, or ``None`` for a shape it cannot show.

    The builder shows a top-level AND/OR of groups, each an AND/OR of
    conditions; rules written elsewhere with ``not`` or deeper nesting are
    kept and shown as JSON.
    """
    try:
        node = parse_rules(data)
    except CohortsyncError:
        return None
    if isinstance(node, Condition):
        return Builder("and", [Group("and", [_row(node)])])
    if not isinstance(node, And | Or):
        return None
    join = "and" if isinstance(node, And) else "or"
    if all(isinstance(child, Condition) for child in node.rules):
        rows = [_row(child) for child in node.rules if isinstance(child, Condition)]
        return Builder("and", [Group(join, rows)])
    groups = []
    for child in node.rules:
        if isinstance(child, Condition):
            groups.append(Group("and", [_row(child)]))
        elif isinstance(child, And | Or) and all(isinstance(c, Condition) for c in child.rules):
            kind = "and" if isinstance(child, And) else "or"
            groups.append(Group(kind, [_row(c) for c in child.rules if isinstance(c, Condition)]))
        else:
            return None
    return Builder(join, groups)


def _row(condition: Condition) -> RuleRow:
    value = condition.value
    if isinstance(value, list):
        text = ", ".join(_text_of(item) for item in value)
    else:
        text = "" if value is None else _text_of(value)
    return RuleRow(condition.column, condition.op, text)


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply_action(builder: Builder, action: str, group: int, rule: int) -> Builder:
    """Add or remove a rule or a group, as the builder's buttons ask."""
    groups = builder.groups
    if action == "add-group":
        groups.append(Group())
    elif action == "remove-group" and 0 <= group < len(groups):
        del groups[group]
    elif action == "add-rule" and 0 <= group < len(groups):
        groups[group].rules.append(RuleRow())
    elif action == "remove-rule" and 0 <= group < len(groups):
        rules = groups[group].rules
        if 0 <= rule < len(rules):
            del rules[rule]
        if not rules:
            del groups[group]
    if not groups:
        groups.append(Group())
    return builder


def evaluate(
    builder: Builder, parent: SavedParent, console: Console, *, count: bool = True
) -> Evaluation:
    """The builder's rules checked against the parent table, one rule at a time, and counted."""
    result = Evaluation()
    try:
        schema = parents.parent_schema(parent, console.settings)
    except CohortsyncError as error:
        result.failure = error
        return result
    columns = {column.name: column for column in parents.schema_columns(schema)}
    groups = []
    for g, group in enumerate(builder.groups):
        conditions = []
        for r, row in enumerate(group.rules):
            column = columns.get(row.column)
            if column is None:
                result.incomplete = True
                if row.column:
                    result.problems[f"{g}-{r}"] = (
                        f"{row.column!r} is not a column of {parent.table}"
                    )
                continue
            if row.op not in column.operators:
                row.op = column.operators[0]
            if row.op not in NULL_TESTS and not row.value.strip():
                result.incomplete = True
                continue
            condition = {"column": row.column, "op": row.op}
            if row.op not in NULL_TESTS:
                condition["value"] = _typed_value(row.op, row.value, column.kind)
            try:
                compile_rules(parse_rules(condition), schema, table=parent.table)
            except CohortsyncError as error:
                result.problems[f"{g}-{r}"] = _said(error)
                continue
            conditions.append(condition)
        if conditions:
            groups.append({group.join: conditions})
    if result.problems or result.incomplete or not groups:
        result.incomplete = result.incomplete or not groups
        return result
    result.rules = {builder.join: groups}
    if count:
        try:
            result.count = segments.count_matching(
                parent.name, result.rules, settings=console.settings
            )
        except CohortsyncError as error:
            result.failure = error
    return result


def _typed_value(op: str, text: str, kind: str) -> Any:
    """The value typed for ``op`` as the column's family reads it; lists for in and between."""
    if op in ("in", "between"):
        return [_scalar(item.strip(), kind) for item in text.split(",") if item.strip()]
    return _scalar(text.strip() if kind != "text" else text, kind)


def _scalar(text: str, kind: str) -> Any:
    """Text as a number for a numeric column, as true/false for a boolean one, else text.

    Text that does not read as the column expects stays text, and the
    compiler names the mismatch (``value 'abc' does not fit column 'age'``).
    """
    if kind == "number":
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _builder_context(
    parent: SavedParent, builder: Builder, evaluation: Evaluation, console: Console
) -> dict[str, Any]:
    columns, failure = _columns_of(parent, console)
    return {
        "parent": parent,
        "builder": builder,
        "evaluation": evaluation,
        "columns": columns,
        "column_by_name": {column.name: column for column in columns},
        "columns_failure": failure,
        "operator_text": OPERATOR_TEXT,
        "join_text": JOIN_TEXT,
        "null_tests": NULL_TESTS,
    }


@router.post("/audience/parents/{name}/builder")
async def builder_fragment(
    request: Request,
    name: str,
    console: Console = Depends(console_of),
    action: str = "",
    group: int = -1,
    rule: int = -1,
) -> Response:
    """The builder re-rendered after a button or an attribute change, with the count beside it."""
    parent = parents.get_parent(name, settings=console.settings)
    builder = apply_action(builder_from_form(await request.form()), action, group, rule)
    evaluation = evaluate(builder, parent, console)
    context = {**_builder_context(parent, builder, evaluation, console), "oob": True}
    return console.pages.render(request, "console/_audience_builder.html", context)


@router.post("/audience/parents/{name}/count")
async def count_fragment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    """The live count of the rules posted, and each rule's problem in its place."""
    parent = parents.get_parent(name, settings=console.settings)
    builder = builder_from_form(await request.form())
    evaluation = evaluate(builder, parent, console)
    context = {**_builder_context(parent, builder, evaluation, console), "oob": True}
    return console.pages.render(request, "console/_audience_count.html", context)


@router.get("/audience/parents/{name}/segments/new")
def new_segment_form(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    builder = Builder()
    return _segment_form(request, console, parent, builder, {})


@router.post("/audience/parents/{name}/segments/new")
async def create_segment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    return await _save_segment(request, console, parent, existing=None)


@router.get("/audience/segments/{name}")
def segment_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    parent = parents.get_parent(segment.parent, settings=console.settings)
    builder = builder_from_rules(segment.rules)
    values = {"name": segment.name, "description": segment.description or ""}
    return _segment_form(
        request,
        console,
        parent,
        builder or Builder(),
        values,
        existing=name,
        saved=saved,
        unshowable=segment.rules if builder is None else None,
    )


@router.post("/audience/segments/{name}")
async def update_segment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    parent = parents.get_parent(segment.parent, settings=console.settings)
    return await _save_segment(request, console, parent, existing=name)


async def _save_segment(
    request: Request, console: Console, parent: SavedParent, *, existing: str | None
) -> Response:
    form = await request.form()
    builder = builder_from_form(form)
    name = existing or str(form.get("name", "")).strip()
    description = str(form.get("description", "")).strip()
    values = {"name": name, "description": description}
    evaluation = evaluate(builder, parent, console, count=False)
    errors: dict[str, str] = {}
    if evaluation.rules is None:
        if not evaluation.problems:
            errors["rules"] = (
                "Complete every rule: choose an attribute and give a value (or remove the rule)."
            )
        else:
            errors["rules"] = "Fix the rules marked below."
    data = {
        "name": name,
        "parent": parent.name,
        "rules": evaluation.rules or {},
        "description": description or None,
    }
    segment: Segment | None = None
    try:
        segment = Segment.model_validate(data)
    except ValidationError as error:
        errors = {**{k: v for k, v in field_problems(error).items() if k != "rules"}, **errors}
    if errors or segment is None:
        return _segment_form(
            request,
            console,
            parent,
            builder,
            values,
            existing=existing,
            errors=errors,
            evaluation=evaluation,
            status=422,
        )
    try:
        if existing is None:
            segments.create_segment(
                segment.name,
                segment.parent,
                segment.rules,
                description=segment.description,
                settings=console.settings,
            )
        else:
            segments.update_segment(
                segment.name,
                rules=segment.rules,
                description=description,
                settings=console.settings,
            )
    except CohortsyncError as error:
        return _segment_form(
            request,
            console,
            parent,
            builder,
            values,
            existing=existing,
            failure=error,
            evaluation=evaluation,
            status=422,
        )
    return redirect(request, f"/audience/segments/{name}?saved=1")


def _segment_form(
    request: Request,
    console: Console,
    parent: SavedParent,
    builder: Builder,
    values: Mapping[str, Any],
    *,
    existing: str | None = None,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    evaluation: Evaluation | None = None,
    saved: str = "",
    unshowable: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    if evaluation is None or (evaluation.count is None and evaluation.rules is not None):
        evaluation = evaluate(builder, parent, console)
    context = {
        **_builder_context(parent, builder, evaluation, console),
        "oob": False,
        "values": values,
        "errors": errors or {},
        "failure": failure,
        "existing": existing,
        "saved": saved,
        "unshowable": unshowable,
        "activations": (
            activations.list_activations(segment=existing, settings=console.settings)
            if existing
            else []
        ),
    }
    return console.pages.render(
        request, "console/audience_segment.html", context, status_code=status
    )


@router.get("/audience/segments/{name}/delete")
def confirm_delete_segment(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    return _confirm_delete(request, console, "segment", name)


@router.post("/audience/segments/{name}/delete")
def delete_segment(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    try:
        segments.delete_segment(name, settings=console.settings)
    except CohortsyncError as error:
        return _confirm_delete(request, console, "segment", name, failure=error, status=409)
    return redirect(request, f"/audience?deleted=segment+{name}")


# --- activations -----------------------------------------------------------------------


@dataclass
class MappingRow:
    attribute: str = ""
    output: str = USER_IDS  # user_ids, device_ids or ALIAS_OUTPUT


_MAP_FIELD = re.compile(r"map-(\d+)-(attribute|output)")


def mapping_from_form(form: FormData) -> list[MappingRow]:
    rows: dict[int, dict[str, str]] = {}
    for key, raw in form.multi_items():
        if match := _MAP_FIELD.fullmatch(key):
            rows.setdefault(int(match[1]), {})[match[2]] = raw if isinstance(raw, str) else ""
    return [
        MappingRow(row.get("attribute", ""), row.get("output", USER_IDS))
        for _, row in sorted(rows.items())
    ]


def activation_values(form: FormData) -> dict[str, Any]:
    """The activation form's fields as typed, for the definition and to show again."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    return {
        "name": text("name"),
        "description": text("description"),
        "auth": text("auth"),
        "cohort_id": text("cohort_id"),
        "cohort_name": text("cohort_name"),
        "operation": text("operation") or "add",
        "alias_column": text("alias_column"),
        "threads": text("threads"),
        "cast_to_string": form.get("cast_to_string") == "on",
        "skip_invalid": form.get("skip_invalid") == "on",
        "allow_empty": form.get("allow_empty") == "on",
        "max_remove_pct": text("max_remove_pct"),
        "schedule": text("schedule"),
        "timezone": text("timezone") or "UTC",
    }


def activation_data(
    values: Mapping[str, Any], mapping: list[MappingRow], segment: str
) -> dict[str, Any]:
    """The :class:`Activation` fields of the form; empty optional fields are left unset."""
    alias = values["alias_column"] or None
    return {
        "name": values["name"],
        "segment": segment,
        "description": values["description"] or None,
        "auth": values["auth"],
        "cohort_id": values["cohort_id"],
        "cohort_name": values["cohort_name"] or None,
        "operation": values["operation"],
        "alias_column": alias,
        "threads": values["threads"] or DEFAULT_THREADS,
        "cast_to_string": values["cast_to_string"],
        "skip_invalid": values["skip_invalid"],
        "mirror": {
            "allow_empty": values["allow_empty"],
            "max_remove_pct": values["max_remove_pct"] or DEFAULT_MAX_REMOVE_PCT,
        },
        "schedule": values["schedule"] or None,
        "timezone": values["timezone"],
        "mapping": [
            {
                "attribute": row.attribute,
                "output": (alias or ALIAS_OUTPUT) if row.output == ALIAS_OUTPUT else row.output,
            }
            for row in mapping
            if row.attribute
        ],
    }


def values_of(activation: SavedActivation) -> tuple[dict[str, Any], list[MappingRow]]:
    """A saved activation as the form shows it."""
    values = {
        "name": activation.name,
        "description": activation.description or "",
        "auth": activation.auth,
        "cohort_id": activation.cohort_id,
        "cohort_name": activation.cohort_name or "",
        "operation": activation.operation,
        "alias_column": activation.alias_column or "",
        "threads": str(activation.threads),
        "cast_to_string": activation.cast_to_string,
        "skip_invalid": activation.skip_invalid,
        "allow_empty": activation.mirror.allow_empty,
        "max_remove_pct": _number_text(activation.mirror.max_remove_pct),
        "schedule": activation.schedule or "",
        "timezone": activation.timezone,
    }
    mapping = [
        MappingRow(
            m.attribute,
            m.output if m.output in (USER_IDS, DEVICE_IDS) else ALIAS_OUTPUT,
        )
        for m in activation.mapping
    ]
    return values, mapping


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _new_activation_values() -> dict[str, Any]:
    return {
        "name": "",
        "description": "",
        "auth": "",
        "cohort_id": "",
        "cohort_name": "",
        "operation": "add",
        "alias_column": "",
        "threads": str(DEFAULT_THREADS),
        "cast_to_string": False,
        "skip_invalid": False,
        "allow_empty": False,
        "max_remove_pct": _number_text(DEFAULT_MAX_REMOVE_PCT),
        "schedule": "",
        "timezone": "UTC",
    }


@router.get("/audience/segments/{name}/activations/new")
def new_activation_form(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    return _activation_form(
        request, console, segment.name, _new_activation_values(), [MappingRow()]
    )


@router.post("/audience/segments/{name}/activations/new")
async def create_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    segment = segments.get_segment(name, settings=console.settings)
    return await _save_activation(request, console, segment.name, existing=None)


@router.post("/audience/segments/{name}/mapping")
async def mapping_fragment(
    request: Request,
    name: str,
    console: Console = Depends(console_of),
    action: str = "",
    row: int = -1,
) -> Response:
    """The output mapping rows after *Add mapping* or *Remove*."""
    mapping = mapping_from_form(await request.form())
    if action == "add":
        mapping.append(MappingRow())
    elif action == "remove" and 0 <= row < len(mapping):
        del mapping[row]
    if not mapping:
        mapping.append(MappingRow())
    context = {
        "segment_name": name,
        "mapping": mapping,
        "errors": {},
        **_segment_columns(name, console),
    }
    return console.pages.render(request, "console/_audience_mapping.html", context)


@router.get("/audience/next-runs")
def next_runs_fragment(
    request: Request,
    console: Console = Depends(console_of),
    schedule: str = "",
    timezone: str = "UTC",
) -> Response:
    """The next run times of a cron expression in its zone, as it is typed."""
    return console.pages.render(
        request, "console/_audience_next_runs.html", next_runs(schedule, timezone or "UTC")
    )


def next_runs(schedule: str, timezone: str) -> dict[str, Any]:
    """The next :data:`NEXT_RUNS` slots of ``schedule`` in ``timezone``, or why there are none."""
    if not schedule.strip():
        return {"times": [], "problem": None, "timezone": timezone}
    try:
        expr = check_cron(schedule, timezone)
    except CohortsyncError as error:
        return {"times": [], "problem": _said(error), "timezone": timezone}
    zone = zoneinfo.ZoneInfo(timezone) if timezone.upper() != "UTC" else UTC
    times: list[datetime] = []
    after = datetime.now(UTC)
    while len(times) < NEXT_RUNS:
        slot = next_slot(expr, timezone, after)
        if slot is None:
            break
        times.append(slot.astimezone(zone))
        after = slot
    return {"times": times, "problem": None, "timezone": timezone}


@router.get("/audience/activations/{name}")
def activation_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    activation = activations.get_activation(name, settings=console.settings)
    values, mapping = values_of(activation)
    return _activation_form(
        request, console, activation.segment, values, mapping, existing=activation, saved=saved
    )


@router.post("/audience/activations/{name}")
async def update_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    activation = activations.get_activation(name, settings=console.settings)
    return await _save_activation(request, console, activation.segment, existing=activation)


@router.post("/audience/activations/{name}/run")
def run_now(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    activations.get_activation(name, settings=console.settings)
    settings = console.settings
    launch = console.launches.start(
        activations.job_label(name),
        lambda reporter, stop: activations.run_activation(
            name, reporter=reporter, stop=stop, settings=settings
        ),
    )
    return launched(request, launch)


@router.get("/audience/activations/{name}/delete")
def confirm_delete_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    return _confirm_delete(request, console, "activation", name)


@router.post("/audience/activations/{name}/delete")
def delete_activation(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    try:
        activations.delete_activation(name, settings=console.settings)
    except CohortsyncError as error:
        return _confirm_delete(request, console, "activation", name, failure=error, status=409)
    return redirect(request, f"/audience?deleted=activation+{name}")


async def _save_activation(
    request: Request, console: Console, segment: str, *, existing: SavedActivation | None
) -> Response:
    form = await request.form()
    values = activation_values(form)
    if existing is not None:
        values["name"] = existing.name
    mapping = mapping_from_form(form)
    data = activation_data(values, mapping, segment)
    try:
        definition = Activation.model_validate(data)
    except ValidationError as error:
        return _activation_form(
            request,
            console,
            segment,
            values,
            mapping,
            existing=existing,
            errors=_activation_problems(error),
            status=422,
        )
    try:
        if existing is None:
            activations.create_activation(definition, settings=console.settings)
        else:
            changes = {k: v for k, v in definition.model_dump().items() if k != "name"}
            activations.update_activation(existing.name, settings=console.settings, **changes)
    except CohortsyncError as error:
        return _activation_form(
            request,
            console,
            segment,
            values,
            mapping,
            existing=existing,
            failure=error,
            status=422,
        )
    return redirect(request, f"/audience/activations/{definition.name}?saved=1")


def _activation_problems(error: ValidationError) -> dict[str, str]:
    """Field problems keyed by the form's field names; the model's own rules are the mapping's."""
    problems = field_problems(error)
    shown: dict[str, str] = {}
    for path, message in problems.items():
        if path == "__root__" or path.startswith("mapping"):
            shown.setdefault("mapping", message)
        elif path.startswith("mirror."):
            shown[path.removeprefix("mirror.")] = message
        else:
            shown[path] = message
    return shown


def _segment_columns(segment: str, console: Console) -> dict[str, Any]:
    try:
        saved = segments.get_segment(segment, settings=console.settings)
        parent = parents.get_parent(saved.parent, settings=console.settings)
    except CohortsyncError:
        return {"columns": [], "parent": None}
    columns, _ = _columns_of(parent, console)
    return {"columns": columns, "parent": parent}


def _activation_form(
    request: Request,
    console: Console,
    segment: str,
    values: Mapping[str, Any],
    mapping: list[MappingRow],
    *,
    existing: SavedActivation | None = None,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    saved: str = "",
    status: int = 200,
) -> Response:
    runs = (
        activations.activation_runs(existing.name, limit=5, settings=console.settings)
        if existing is not None
        else []
    )
    context = {
        "segment_name": segment,
        "values": values,
        "mapping": mapping,
        "errors": errors or {},
        "failure": failure,
        "existing": existing,
        "saved": saved,
        "runs": runs,
        "auths": [auth.name for auth in list_auths(console.catalog)],
        "operations": OPERATIONS,
        "max_threads": MAX_THREADS,
        "zones": time_zones(),
        "next": next_runs(str(values.get("schedule", "")), str(values.get("timezone") or "UTC")),
        **_segment_columns(segment, console),
    }
    return console.pages.render(
        request, "console/audience_activation.html", context, status_code=status
    )


@cache
def time_zones() -> list[str]:
    """The IANA time zones offered as the schedule's zone is typed."""
    return sorted(zoneinfo.available_timezones())


# --- confirmations ------------------------------------------------------------------------

_DELETE_TEXT = {
    "parent": "Its table stays in the warehouse. A parent that segments still use cannot be "
    "deleted: delete those segments first.",
    "segment": "Its rules are lost. A segment that activations still export cannot be "
    "deleted: delete those activations first.",
    "activation": "Its schedule stops. The cohort in Braze keeps its members, and the "
    "activation's runs stay in the history.",
}
_BACK = {
    "parent": "/audience/parents/{}",
    "segment": "/audience/segments/{}",
    "activation": "/audience/activations/{}",
}


def _confirm_delete(
    request: Request,
    console: Console,
    kind: str,
    name: str,
    *,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    getters = {
        "parent": parents.get_parent,
        "segment": segments.get_segment,
        "activation": activations.get_activation,
    }
    getters[kind](name, settings=console.settings)
    return console.pages.render(
        request,
        "console/audience_delete.html",
        {
            "kind": kind,
            "name": name,
            "explanation": _DELETE_TEXT[kind],
            "back": _BACK[kind].format(name),
            "failure": failure,
        },
        status_code=status,
    )
