"""The fields several definitions share, each with its one bound and message.

``threads``, ``cohort_id``, ``operation`` and the mirror guards mean the same
in ``cohortsync export``, a saved query's export and an activation, so they
are declared once here, as annotated types and as :class:`CohortExport`.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cohortsync.definitions.invalid import RuleBroken

Operation = Literal["add", "remove", "mirror"]
AttributeMode = Literal["array", "boolean"]
OPERATIONS: tuple[str, ...] = get_args(Operation)

DEFAULT_PARTNER = "treasuredata"
# ``auto``: the run grows its requests in flight while the answers stay fast
# and the workspace's rate budget has room, and halves them on a 429 or a
# slowdown (:mod:`cohortsync.export.concurrency`); a number is fixed.
AUTO_THREADS: Final = "auto"
ThreadCount = int | Literal["auto"]
DEFAULT_THREADS: ThreadCount = AUTO_THREADS
# Requests in flight at once; Braze's limits make more than this pointless.
MAX_THREADS = 64
DEFAULT_MAX_REMOVE_PCT = 50.0

# Names become job labels (``activation:NAME``), file names and command
# arguments: letters, digits, '_', '.' and '-', starting with a letter or digit.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


# A rest-attribute export's attribute unless named: one array for every cohort
# (``cohorts``) or one boolean per cohort (``cohort_<cohort id>``).
DEFAULT_ARRAY_ATTRIBUTE = "cohorts"
# Braze's limit on a custom attribute's name.
MAX_ATTRIBUTE_NAME = 255
# Keys of a /users/track attributes object that are not custom attributes:
# naming one would address or update something else than the cohort attribute.
RESERVED_ATTRIBUTES = frozenset(
    {
        "external_id",
        "user_alias",
        "braze_id",
        "email",
        "phone",
        "_update_existing_only",
        "push_token_import",
        "first_name",
        "last_name",
        "gender",
        "dob",
        "country",
        "home_city",
        "language",
        "time_zone",
        "email_subscribe",
        "push_subscribe",
        "subscription_groups",
    }
)
ATTRIBUTE_HINT = "give a custom attribute name, e.g. cohorts or cohort_vip"


def attribute_name(mode: AttributeMode, attribute: str | None, cohort_id: str) -> str:
    """The custom attribute a rest-attribute export of ``cohort_id`` changes.

    ``attribute`` when named, else ``cohorts`` (array mode) or
    ``cohort_<cohort id>`` (boolean mode).
    """
    if attribute:
        return attribute
    return DEFAULT_ARRAY_ATTRIBUTE if mode == "array" else f"cohort_{cohort_id}"


def check_attribute_name(name: str) -> str:
    """``name`` if Braze would treat it as a custom attribute.

    The one rule for every way in: a saved query or activation is refused
    when saved, ``cohortsync export`` before it reads a row.

    Raises:
        RuleBroken: empty, too long, starting with ``$``, or a reserved key.
    """
    if not name.strip():
        raise RuleBroken("the attribute name is empty", hint=ATTRIBUTE_HINT)
    if len(name) > MAX_ATTRIBUTE_NAME:
        raise RuleBroken(
            f"the attribute name is longer than {MAX_ATTRIBUTE_NAME} characters",
            hint=ATTRIBUTE_HINT,
        )
    if name.startswith("$") or name in RESERVED_ATTRIBUTES:
        raise RuleBroken(
            f"{name!r} is not a custom attribute name: Braze reads it as a profile field "
            "or an identifier",
            hint=ATTRIBUTE_HINT,
        )
    return name


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a plain name for a saved ``kind``.

    Raises:
        RuleBroken: empty, longer than 128 characters, or other characters.
    """
    if not NAME.fullmatch(name):
        raise RuleBroken(
            f"invalid {kind} name {name!r}",
            hint="use letters, digits, '_', '.' or '-', starting with a letter or digit, "
            "at most 128 characters, e.g. braze-prod",
        )
    return name


class Definition(BaseModel):
    """A saved object: a plain name, no unknown keys, never changed in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]
    name: str

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_name(cls.kind, name)


THREADS_HINT = f"give auto or 1 to {MAX_THREADS} threads, the requests in flight at once"


def thread_count(value: object) -> object:
    """``auto``, or a count from 1 to MAX_THREADS (a form, a catalog row or a flag gives text).

    Raises:
        RuleBroken: neither auto nor a number, or a number out of bounds.
    """
    hint = THREADS_HINT
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == AUTO_THREADS:
            return AUTO_THREADS
        if not re.fullmatch(r"[+-]?\d{1,20}", text):
            raise RuleBroken(f"thread count {value!r} is neither auto nor a number", hint=hint)
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return value  # the type's own refusal names it
    count = value
    if count < 1:
        raise RuleBroken(f"thread count {count} is below 1", hint=hint)
    if count > MAX_THREADS:
        raise RuleBroken(f"thread count {count} is above {MAX_THREADS}", hint=hint)
    return count


def _cohort_id(cohort_id: str) -> str:
    if not cohort_id.strip():
        raise RuleBroken("the cohort id is empty", hint="give the Braze cohort id, e.g. vip")
    return cohort_id


def _operation(value: object) -> object:
    if isinstance(value, str) and value not in OPERATIONS:
        raise RuleBroken(f"unknown operation {value!r}", hint=f"use one of {', '.join(OPERATIONS)}")
    return value


def _percentage(value: float) -> float:
    if not 0 <= value <= 100:
        raise RuleBroken(
            f"mirror max remove percentage {value} is not within 0..100",
            hint="give a share of the cohort from 0 to 100",
        )
    return value


Threads = Annotated[ThreadCount, BeforeValidator(thread_count)]
CohortId = Annotated[str, AfterValidator(_cohort_id)]
OperationName = Annotated[Operation, BeforeValidator(_operation)]
Percentage = Annotated[float, AfterValidator(_percentage)]


class MirrorGuards(BaseModel):
    """The saved guards of ``operation: mirror`` (a full resync is a one-off, per run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_empty: bool = False
    max_remove_pct: Percentage = DEFAULT_MAX_REMOVE_PCT


class CohortExport(BaseModel):
    """Where rows go and how: the settings a saved query's export and an activation share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: str = Field(min_length=1)
    cohort_id: CohortId
    cohort_name: str | None = None
    operation: OperationName = "add"
    alias_column: str | None = None
    threads: Threads = DEFAULT_THREADS
    mirror: MirrorGuards = Field(default_factory=MirrorGuards)
    # Skip and count identifiers Braze would refuse instead of failing the run.
    skip_invalid: bool = False
    # A rest-attribute authentication's attribute: an array holding the cohort id
    # (``cohorts`` unless named) or one boolean per cohort (``cohort_<id>``).
    attribute_mode: AttributeMode = "array"
    attribute: str | None = None

    @field_validator("attribute")
    @classmethod
    def _custom_attribute(cls, attribute: str | None) -> str | None:
        return None if attribute is None else check_attribute_name(attribute)

    @model_validator(mode="after")
    def _default_attribute(self) -> CohortExport:
        """The boolean default (``cohort_<cohort id>``) must be a valid name too."""
        if self.attribute is None and self.attribute_mode == "boolean":
            name = attribute_name(self.attribute_mode, None, self.cohort_id)
            if len(name) > MAX_ATTRIBUTE_NAME:
                raise RuleBroken(
                    f"the attribute name {name[:40]}... is longer than "
                    f"{MAX_ATTRIBUTE_NAME} characters",
                    hint="name the attribute, or give a shorter cohort id",
                )
        return self
