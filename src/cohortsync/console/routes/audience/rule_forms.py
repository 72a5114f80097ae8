"""The segment builder's form read as rules, and saved rules read back into the builder.

The builder is a form of groups of rules: the segment matches all (AND) or
any (OR) of its groups, each group all or any of its rules. Its fields are
``join``, ``group-G-join`` and ``rule-G-R-column|op|value``; the rules it
builds are the JSON of :mod:`cohortsync.audience.rules`. A value typed in a
form is text, so it is read as the column's family expects (a number for a
numeric column), and each rule is compiled against the parent table on its
own so that the compiler's refusal shows next to the rule it concerns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from cohortsync.audience import parents, segments
from cohortsync.audience.compile import compile_rules
from cohortsync.audience.rules import NULL_TESTS, And, Condition, Or, parse_rules
from cohortsync.catalog.audiences import SavedParent
from cohortsync.console.context import Console
from cohortsync.console.field_errors import said
from cohortsync.errors import CohortsyncError


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
                result.problems[f"{g}-{r}"] = said(error)
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
