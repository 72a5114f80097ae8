"""The segment builder's form: posted fields to a filter tree, and a saved tree back.

The builder shows one level of groups, which is what Braze's own builder
shows and what maps onto the tree without loss:

* the segment keeps the users who match **all** (AND) or **any** (OR) of
  its groups (``join``);
* a group keeps the users who match all or any of its filters
  (``g{G}-join``);
* a filter is one row (``g{G}-r{R}-type`` and the fields of that type):
  a partner's cohort included or excluded, the external id present or
  absent, or a custom attribute compared with a value.

So the tree is ``join(group, ...)`` of ``group_join(filter, ...)``, a group
of one filter standing alone (:func:`cohortsync.braze.segments.combine`).
A saved tree of that shape comes back into the same rows; a tree nested
deeper (written through the API or the command line) cannot be shown in
rows, and the page says so instead of silently flattening it.

Everything a person may get wrong comes back as a *problem* keyed by the
row (``"G-R"``), in words for that row; the cohort and attribute checks are
the library's own (:func:`cohortsync.braze.segments.validate_filter`), run
on each row so that the message lands beside the row it is about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cohortsync.braze import segments
from cohortsync.errors import ConfigError

MAX_GROUPS = 10
MAX_ROWS = 20
"""Rows per group: a form of more is refused at the Add button, not built."""

JOINS = {"and": "AND", "or": "OR"}
COHORT_KIND = "cohort:"
"""A cohort row's type is ``cohort:<partner>``: one filter per partner, as Braze lists them."""
EXTERNAL_ID = "external_id"
ATTRIBUTE = "custom_attribute"

SAME_AS = {"is_blank": "does_not_exist", "is_not_blank": "exists"}
ATTRIBUTE_OPERATORS = {
    operator: words for operator, words in segments.OPERATORS.items() if operator not in SAME_AS
}
"""The comparisons the builder offers, in Braze's words (``is blank`` is ``does not exist``)."""
VALUE_TYPES = {"text": "as text", "number": "as a number", "boolean": "as true / false"}
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
FIELD = re.compile(r"^g(\d+)-(?:join|r(\d+)-type)$")


@dataclass
class Row:
    """One filter row as typed: every field is text, as the form posts it."""

    kind: str = ""
    includes: str = "includes"
    cohort_id: str = ""
    present: str = "present"
    name: str = ""
    operator: str = "equals"
    value: str = ""
    value_type: str = "text"

    @property
    def needs_value(self) -> bool:
        return self.operator in segments.VALUE_OPERATORS + segments.NUMBER_OPERATORS

    @property
    def is_cohort(self) -> bool:
        return self.kind.startswith(COHORT_KIND)


@dataclass
class Group:
    join: str = "and"
    rows: list[Row] = field(default_factory=list)


@dataclass
class Builder:
    """The whole builder: groups of rows, and how the groups combine."""

    join: str = "and"
    groups: list[Group] = field(default_factory=list)


@dataclass
class Outcome:
    """The tree the form makes, or the problems that keep it from being one."""

    tree: dict[str, Any] | None
    problems: dict[str, str]
    """``"G-R"`` (0-based) → what is wrong with that row; ``"builder"`` for the whole."""

    def first_problem(self) -> str:
        """The first problem, named by its filter's number, for the live count's hint."""
        for key, problem in self.problems.items():
            if key == "builder":
                return problem
            group, row = (int(part) for part in key.split("-"))
            return f"Filter {row + 1}{f' of group {group + 1}' if group else ''}: {problem}"
        return ""


def kinds(
    choices: Iterable[Mapping[str, Any]], partners: Iterable[Mapping[str, Any]] = ()
) -> list[tuple[str, str]]:
    """The filter types a row may take: each partner's cohort filter, then the others.

    ``partners`` (as :func:`cohortsync.braze.admin.list_partners` lists them)
    adds the filter of each enabled partner that has sent no cohort yet, so
    that the marketer sees it and learns why it lists nothing.
    """
    titles: dict[str, str] = {}
    for choice in choices:
        titles.setdefault(choice["partner"], choice["filter_name"])
    for partner in partners:
        if partner["enabled"]:
            titles.setdefault(partner["name"], partner["filter_name"])
    return [
        *((COHORT_KIND + partner, title) for partner, title in titles.items()),
        (EXTERNAL_ID, "External User ID"),
        (ATTRIBUTE, "Custom Attribute"),
    ]


def new_row(choices: list[dict[str, Any]]) -> Row:
    """A fresh row: the first partner's cohort filter when there are cohorts at all."""
    return Row(kind=COHORT_KIND + choices[0]["partner"] if choices else "")


def new_builder(choices: list[dict[str, Any]]) -> Builder:
    return Builder(groups=[Group(rows=[new_row(choices)])])


# ---------------------------------------------------------------- the posted form


def parse(form: Mapping[str, Any]) -> Builder:
    """The builder as posted: groups and rows by their numbers, renumbered from 0."""
    numbers: dict[int, set[int]] = {}
    for key in form:
        found = FIELD.match(key)
        if found:
            posted = numbers.setdefault(int(found.group(1)), set())
            if found.group(2) is not None:
                posted.add(int(found.group(2)))

    def text(key: str, default: str = "") -> str:
        value = form.get(key)
        return value.strip() if isinstance(value, str) else default

    groups = []
    for g in sorted(numbers)[:MAX_GROUPS]:
        rows = []
        for r in sorted(numbers[g])[:MAX_ROWS]:
            prefix = f"g{g}-r{r}-"
            rows.append(
                Row(
                    kind=text(prefix + "type"),
                    includes=text(prefix + "includes", "includes"),
                    cohort_id=text(prefix + "cohort"),
                    present=text(prefix + "present", "present"),
                    name=text(prefix + "name"),
                    operator=text(prefix + "operator", "equals"),
                    value=text(prefix + "value"),
                    value_type=text(prefix + "value_type", "text"),
                )
            )
        groups.append(Group(join=_join(text(f"g{g}-join")), rows=rows))
    return Builder(join=_join(text("join")), groups=groups)


def _join(value: str) -> str:
    return value if value in JOINS else "and"


def apply(builder: Builder, action: str, choices: list[dict[str, Any]]) -> bool:
    """Add or remove a row or a group (``add-row:G``, ``remove-row:G:R``, ``add-group``,
    ``remove-group:G``), or just show the rows again (``refresh``, the no-JavaScript way to
    see a new filter type's fields); False for any other action (``save``)."""
    verb, _, where = action.partition(":")
    numbers = [int(part) for part in where.split(":") if part.isdigit()]
    groups = builder.groups
    if verb == "refresh":
        pass
    elif verb == "add-group":
        if len(groups) < MAX_GROUPS:
            groups.append(Group(rows=[new_row(choices)]))
    elif verb == "add-row" and numbers and numbers[0] < len(groups):
        rows = groups[numbers[0]].rows
        if len(rows) < MAX_ROWS:
            rows.append(new_row(choices))
    elif verb == "remove-row" and len(numbers) == 2 and numbers[0] < len(groups):
        rows = groups[numbers[0]].rows
        if numbers[1] < len(rows):
            del rows[numbers[1]]
        if not rows:
            del groups[numbers[0]]
    elif verb == "remove-group" and numbers and numbers[0] < len(groups):
        del groups[numbers[0]]
    else:
        return False
    if not groups:
        groups.append(Group(rows=[new_row(choices)]))
    return True


def check(
    conn: sa.Connection, workspace_id: int, builder: Builder, choices: list[dict[str, Any]]
) -> Outcome:
    """The builder's filter tree, each row checked on its own so its problem lands beside it.

    Only cohorts among ``choices`` (the workspace's own) are accepted; the
    library then checks each filter as saving it would.
    """
    cohort_ids = {choice["cohort_id"] for choice in choices}
    problems: dict[str, str] = {}
    parts = []
    for g, group in enumerate(builder.groups):
        leaves = []
        for r, row in enumerate(group.rows):
            try:
                leaf = _leaf(row, cohort_ids)
                segments.validate_filter(conn, workspace_id, leaf)
            except ConfigError as error:
                problems[f"{g}-{r}"] = _row_words(error.message)
                continue
            leaves.append(leaf)
        if group.join == builder.join:
            parts.extend(leaves)  # (a AND b) AND c is a AND b AND c: the tree stays flat
        elif leaves:
            parts.append(segments.combine(group.join, leaves))
    if not parts and not problems:
        problems["builder"] = "Add a filter: a segment keeps the users its filters describe."
    if problems:
        return Outcome(None, problems)
    return Outcome(segments.combine(builder.join, parts), {})


def _row_words(message: str) -> str:
    """The library's message without its ``segment filter:`` prefix, as a sentence."""
    words = re.sub(r"^segment filter[^:]*: ", "", message)
    return words[:1].upper() + words[1:] + ("" if words.endswith(".") else ".")


def _leaf(row: Row, cohort_ids: set[str]) -> dict[str, Any]:
    """One row's filter; a :class:`ConfigError` in words for the row when it is not one yet."""
    if row.is_cohort:
        if not row.cohort_id:
            raise ConfigError("Choose a cohort from the list.")
        if row.cohort_id not in cohort_ids:
            raise ConfigError(
                f"There is no cohort {row.cohort_id!r} in this workspace: choose one from the list."
            )
        if row.includes not in ("includes", "excludes"):
            raise ConfigError("Choose whether the segment includes or excludes the cohort.")
        return segments.cohort_filter(row.cohort_id, includes=row.includes == "includes")
    if row.kind == EXTERNAL_ID:
        if row.present not in ("present", "absent"):
            raise ConfigError("Choose whether the external id is present or absent.")
        return segments.external_id_filter(present=row.present == "present")
    if row.kind == ATTRIBUTE:
        if not row.name:
            raise ConfigError("Enter the custom attribute's name, e.g. plan.")
        operator = row.operator
        if operator not in ATTRIBUTE_OPERATORS:
            raise ConfigError("Choose a comparison from the list.")
        if not row.needs_value:
            return segments.attribute_filter(row.name, operator)
        return segments.attribute_filter(row.name, operator, _value(row))
    if not row.kind:
        raise ConfigError("Choose a filter type, or remove this filter.")
    raise ConfigError(f"There is no filter type {row.kind!r}: choose one from the list.")


def _value(row: Row) -> Any:
    words = ATTRIBUTE_OPERATORS[row.operator]
    if row.operator in segments.NUMBER_OPERATORS or row.value_type == "number":
        if not row.value:
            raise ConfigError(f"Enter the number {row.name!r} is compared with.")
        number = parse_number(row.value)
        if number is None:
            raise ConfigError(
                f"{words.capitalize()} compares numbers: enter a number such as 10 or 2.5, "
                f"not {row.value!r}."
            )
        return number
    if row.value_type == "boolean":
        if row.value.lower() not in ("true", "false"):
            raise ConfigError(f"Enter true or false for {row.name!r}, not {row.value!r}.")
        return row.value.lower() == "true"
    if row.value_type != "text":
        raise ConfigError("Choose how the value is read: as text, a number or true / false.")
    if not row.value:
        raise ConfigError(
            f"Enter the value {row.name!r} {words}; to find users without it, "
            "use the comparison does not exist."
        )
    return row.value


def parse_number(text: str) -> int | float | None:
    """``10`` → 10, ``2.5`` → 2.5; None for text that is not a finite number."""
    if not NUMBER.match(text):
        return None
    number: int | float = float(text) if any(mark in text for mark in ".eE") else int(text, base=10)
    if not math.isfinite(number) or abs(number) >= 2**63:
        return None
    return number


# ---------------------------------------------------------------- a saved tree


def from_tree(tree: dict[str, Any], choices: list[dict[str, Any]]) -> Builder | None:
    """The rows that make ``tree`` again; None when it nests deeper than one level of groups.

    The filters directly under the top and / or become one group that joins
    as the top does, which keeps the tree's meaning.
    """
    partner_of = {choice["cohort_id"]: choice["partner"] for choice in choices}
    kind = tree["type"]
    if kind not in JOINS:
        return Builder(groups=[Group(rows=[_row(tree, partner_of)])])
    loose = [child for child in tree["filters"] if child["type"] not in JOINS]
    nested = [child for child in tree["filters"] if child["type"] in JOINS]
    if not nested:
        return Builder(groups=[Group(join=kind, rows=[_row(c, partner_of) for c in loose])])
    groups = [Group(join=kind, rows=[_row(c, partner_of) for c in loose])] if loose else []
    for child in nested:
        if any(grandchild["type"] in JOINS for grandchild in child["filters"]):
            return None
        groups.append(
            Group(join=child["type"], rows=[_row(c, partner_of) for c in child["filters"]])
        )
    return Builder(join=kind, groups=groups)


def _row(leaf: dict[str, Any], partner_of: Mapping[str, str]) -> Row:
    kind = leaf["type"]
    if kind == "cohort":
        partner = partner_of.get(leaf["cohort_id"], next(iter(partner_of.values()), ""))
        return Row(
            kind=COHORT_KIND + partner,
            cohort_id=leaf["cohort_id"],
            includes="includes" if leaf["includes"] else "excludes",
        )
    if kind == "external_id":
        return Row(kind=EXTERNAL_ID, present="present" if leaf["present"] else "absent")
    operator = SAME_AS.get(leaf["operator"], leaf["operator"])
    row = Row(kind=ATTRIBUTE, name=leaf["name"], operator=operator)
    value = leaf.get("value")
    if isinstance(value, bool):
        row.value, row.value_type = ("true" if value else "false"), "boolean"
    elif isinstance(value, int | float):
        row.value, row.value_type = repr(value), "number"
    elif isinstance(value, str):
        row.value = value
    return row
