"""The rule language of segments: a small JSON tree of conditions.

A segment is a set of rules over the columns of its parent table. Rules are
data, not SQL: they are stored as JSON, validated against the table's columns
and types, and compiled to parameterised SQL by :mod:`cohortsync.audience.compile`,
so a value can never become SQL.

The JSON shape, one node is one of::

    {"column": "country", "op": "=", "value": "FR"}        a condition
    {"and": [node, node, ...]}                              all must hold
    {"or":  [node, node, ...]}                              any must hold
    {"not": node}                                           negation

Operators: ``=  !=  <  <=  >  >=`` take one value; ``in`` a non-empty list;
``between`` a list of exactly two values (both ends included); ``like`` one
string pattern (``%`` and ``_`` wildcards, strings only); ``is null`` and
``is not null`` take no value. Operators are case-insensitive.

Example::

    {"and": [
        {"column": "country", "op": "in", "value": ["FR", "BE"]},
        {"not": {"column": "age", "op": "between", "value": [18, 30]}},
        {"or": [{"column": "email", "op": "like", "value": "%@example.com"},
                {"column": "email", "op": "is null"}]}
    ]}

This module checks the shape only (which operator takes which kind of value);
whether a column exists and a value fits its type needs the table, and is the
compiler's job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from cohortsync.errors import ConfigError
from cohortsync.textfiles import read_text

Operator = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "between", "like", "is null", "is not null"
]
OPERATORS: tuple[str, ...] = get_args(Operator)
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})
NULL_TESTS = frozenset({"is null", "is not null"})

# Strict types: a JSON "18" stays a string and 18 stays a number, so a wrong
# type is reported instead of silently coerced.
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class Condition(BaseModel):
    """One comparison of a column with a value (or a NULL test)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1)
    op: Operator
    value: Scalar | list[Scalar] | None = None

    @field_validator("op", mode="before")
    @classmethod
    def _normalise_op(cls, op: Any) -> Any:
        """Accept ``IN``, ``Is Null``, ``is  null``: operators are not case-sensitive."""
        if isinstance(op, str):
            op = " ".join(op.lower().split())
            return "!=" if op == "<>" else op
        return op

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        op, value = self.op, self.value
        if op in NULL_TESTS:
            if value is not None:
                raise ValueError(f"'{op}' takes no value, got {value!r}")
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("'in' takes a non-empty list of values")
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("'between' takes a list of exactly two values [low, high]")
        elif value is None or isinstance(value, list):
            raise ValueError(f"'{op}' takes one value (not a list, not null)")
        return self


class And(BaseModel):
    """Every rule holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    rules: list[Rule] = Field(alias="and", min_length=1)


class Or(BaseModel):
    """At least one rule holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    rules: list[Rule] = Field(alias="or", min_length=1)


class Not(BaseModel):
    """The rule does not hold (SQL logic: a NULL comparison stays unmatched)."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    rule: Rule = Field(alias="not")


def _node_kind(node: Any) -> str | None:
    """Pick the node type from its keys, so errors speak of the right shape."""
    if isinstance(node, BaseModel):
        return {And: "and", Or: "or", Not: "not"}.get(type(node), "condition")
    if isinstance(node, dict):
        for key in ("and", "or", "not"):
            if key in node:
                return key
        return "condition"
    return None


Rule = Annotated[
    Annotated[Condition, Tag("condition")]
    | Annotated[And, Tag("and")]
    | Annotated[Or, Tag("or")]
    | Annotated[Not, Tag("not")],
    Discriminator(
        _node_kind,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "a rule is an object: {column, op, value}, {and: [...]}, {or: [...]} or {not: {...}}"
        ),
    ),
]

for _model in (And, Or, Not):
    _model.model_rebuild()

_RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)

# Rules nested deeper than this are refused before validation: no real segment
# needs it, and a tree thousands of levels deep would exhaust Python's stack in
# the validator, the compiler and the JSON encoder.
MAX_RULE_DEPTH = 50


def _check_depth(data: Any) -> None:
    """Refuse ``and``/``or``/``not`` nested deeper than :data:`MAX_RULE_DEPTH`, iteratively."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        children: list[Any] = []
        for key in ("and", "or"):
            if isinstance(node.get(key), list):
                children.extend(node[key])
        if "not" in node:
            children.append(node["not"])
        if children and depth > MAX_RULE_DEPTH:
            raise ConfigError(
                f"segment rules are nested more than {MAX_RULE_DEPTH} levels deep",
                hint="flatten them: one 'and' or 'or' takes any number of rules",
            )
        stack.extend((child, depth + 1) for child in children)


def parse_rules(data: Any) -> Rule:
    """Validate a decoded JSON tree into a rule.

    Raises:
        ConfigError: the tree is not a valid rule, or is nested more than
            :data:`MAX_RULE_DEPTH` levels; the message gives the path of the
            first problem, e.g. ``and.1.not: 'between' takes ...``.
    """
    _check_depth(data)
    try:
        return _RULE_ADAPTER.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"invalid segment rules at {_json_path(first['loc'])}: {message}",
            hint="see 'cohortsync segment create --help' for the rule format",
        ) from None


def _json_path(loc: tuple[int | str, ...]) -> str:
    """``('and', 'and', 1, 'not', 'not', 'condition')`` -> ``and[1].not``.

    Pydantic's location repeats each union tag before the field of the same
    name and names the ``condition`` tag; users only care about their JSON.
    """
    path = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "condition" and not (part == previous and part in ("and", "or", "not")):
            path += f".{part}" if path else part
        previous = part
    return path or "top level"


def load_rules(text_or_path: str) -> Rule:
    """Read rules given on the command line: inline JSON, or the path of a JSON file.

    Text that starts with ``{`` is JSON; anything else names a file.
    """
    text = text_or_path.strip()
    source = "the --rules JSON"
    if not text.startswith("{"):
        path = Path(text_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"rules file not found: {path}",
                hint="pass a JSON file or inline JSON that starts with '{'",
            )
        text = read_text(path, f"the rules file {path}")
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"rules in {source} are not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"rules in {source} are nested more than {MAX_RULE_DEPTH} levels deep",
            hint="flatten them: one 'and' or 'or' takes any number of rules",
        ) from None
    return parse_rules(data)


def rules_to_json(rule: Rule) -> dict[str, Any]:
    """The JSON tree of a rule, as stored in the catalog and shown to users."""
    data: dict[str, Any] = _RULE_ADAPTER.dump_python(rule, by_alias=True, exclude_none=True)
    return data


def columns_of(rule: Rule) -> set[str]:
    """Every column a rule mentions."""
    if isinstance(rule, Condition):
        return {rule.column}
    if isinstance(rule, Not):
        return columns_of(rule.rule)
    return set().union(*(columns_of(child) for child in rule.rules))
