"""A definition refused: from pydantic's ValidationError to one line a user can act on.

The models raise :class:`RuleBroken` for the rules they own (a bound, a
name, a cron expression): its message names the field and the bad value
in the words of every way in ("thread count 65 is above 64"), and its
hint says what to give instead. Pydantic's own refusals (a missing field,
a wrong type, an unknown key) do not name their place, so the line starts
with it (``activations[0].threads: Input should be a valid integer``).

When a definition breaks several rules, a wrong shape is reported before a
broken rule: a misspelt key often explains the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cohortsync.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class RuleBroken(ValueError):
    """A value breaks a rule of its definition.

    Args:
        message: what is wrong, naming the field and the value.
        hint: what to give instead.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def validated(
    model: type[M],
    data: Any,
    *,
    at: str = "",
    subject: str = "",
    hint: str | None = None,
) -> M:
    """``data`` as a ``model``, or the one-line :class:`ConfigError` saying why not.

    Args:
        model: the definition to build.
        data: its fields (a mapping, or an instance to check again).
        at: where ``data`` sits in a larger document (``activations[0]``),
            put before the field of a shape error.
        subject: what ``data`` defines (``activation fr_vip``), put before
            the message of a broken rule.
        hint: what to do about a shape error (a broken rule brings its own).

    Raises:
        ConfigError: ``data`` is not a valid ``model``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise refusal(error, at=at, subject=subject, hint=hint) from None


def refusal(
    error: ValidationError, *, at: str = "", subject: str = "", hint: str | None = None
) -> ConfigError:
    """The :class:`ConfigError` for ``error``'s first problem (see :func:`validated`)."""
    problems = error.errors()
    first = min(problems, key=lambda problem: _rule(problem) is not None)
    rule = _rule(first)
    if rule is not None:
        named = subject and tuple(first["loc"][:1]) != ("name",)
        return ConfigError(f"{subject}: {rule.message}" if named else rule.message, hint=rule.hint)
    where = _place(at, first["loc"])
    text = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{where}: {text}" if where else text, hint=hint)


def _place(at: str, loc: Sequence[int | str]) -> str:
    """``at`` and a pydantic location as one path: ``activations[0].mirror.allow_empty``."""
    text = at
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _rule(problem: ErrorDetails) -> RuleBroken | None:
    cause = (problem.get("ctx") or {}).get("error")
    return cause if isinstance(cause, RuleBroken) else None


def field_problems(error: ValidationError) -> dict[str, str]:
    """Each refused field's message, keyed by its dotted path (``mirror.max_remove_pct``).

    What a form shows next to each field: the words of :func:`validated`, a
    broken rule's message with its hint, or pydantic's own words.
    """
    problems: dict[str, str] = {}
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"]) or "__root__"
        if path in problems:
            continue
        rule = _rule(problem)
        if rule is not None:
            text = rule.message + (f" ({rule.hint})" if rule.hint else "")
        else:
            text = problem["msg"].removeprefix("Value error, ")
        problems[path] = text[:1].upper() + text[1:]
    return problems
