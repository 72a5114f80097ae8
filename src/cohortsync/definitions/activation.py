"""An activation: a segment exported to a Braze cohort, now or on a schedule.

The output mapping follows the spec's Audience Studio rule: an output is
``user_ids`` for Braze external ids, ``device_ids`` for device ids, or the
activation's alias column for aliases. Anything else would be ignored by the
export, so it is refused here with the allowed names. That each attribute is
a column of the parent table (and a string, unless cast) needs the
warehouse: :mod:`cohortsync.audience.mapping` checks it when saving.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator

from cohortsync.definitions.alerts import Alerted
from cohortsync.definitions.fields import CohortExport, Definition
from cohortsync.definitions.invalid import RuleBroken
from cohortsync.definitions.schedule import Scheduled

USER_IDS = "user_ids"
DEVICE_IDS = "device_ids"


class OutputMapping(BaseModel):
    """One ``ATTRIBUTE=OUTPUT`` pair: a parent column and the output it becomes.

    Read from ``"customer_id=user_ids"`` (the CLI, YAML) or from
    ``{"attribute": "customer_id", "output": "user_ids"}`` (YAML, the catalog).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    output: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, item: Any) -> Any:
        if isinstance(item, OutputMapping):
            return item
        if isinstance(item, str):
            attribute, _, output = item.partition("=")
        elif isinstance(item, dict):
            attribute, output = item.get("attribute", ""), item.get("output", "")
        else:
            return item
        if not isinstance(attribute, str) or not isinstance(output, str):
            return item
        if not attribute.strip() or not output.strip():
            raise RuleBroken(
                f"invalid output mapping {item!r}",
                hint="write ATTRIBUTE=OUTPUT, e.g. --map customer_id=user_ids",
            )
        return {"attribute": attribute.strip(), "output": output.strip()}

    def __str__(self) -> str:
        return f"{self.attribute}={self.output}"


def allowed_outputs(alias_column: str | None) -> list[str]:
    """The output names an activation may use: ``user_ids``, ``device_ids``, its alias column."""
    return [USER_IDS, DEVICE_IDS, *([alias_column] if alias_column else [])]


class Activation(Definition, Scheduled, CohortExport, Alerted):
    """A segment exported to a cohort through a saved authentication (``auth``).

    Its runs are labelled ``activation:NAME``. ``cast_to_string`` sends
    non-text attributes in their text form; ``skip_invalid`` makes every run,
    scheduled or not, skip and count identifiers Braze would refuse;
    ``alerts`` post to a webhook after its runs.
    """

    kind = "activation"

    segment: str
    mapping: list[OutputMapping]
    cast_to_string: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _usable_mapping(self) -> Self:
        alias = self.alias_column
        if alias in (USER_IDS, DEVICE_IDS):
            raise RuleBroken(
                f"alias column {alias!r} clashes with the built-in output of that name",
                hint="name the alias column after its alias label, e.g. --alias-column email",
            )
        if not self.mapping:
            raise RuleBroken(
                "an activation needs at least one output mapping",
                hint="add --map ATTRIBUTE=OUTPUT, e.g. --map customer_id=user_ids",
            )
        allowed = allowed_outputs(alias)
        seen: set[str] = set()
        for mapping in self.mapping:
            if mapping.output not in allowed:
                extra = "" if alias else " (or set --alias-column to send aliases)"
                raise RuleBroken(
                    f"output name {mapping.output!r} of mapping {mapping} is not allowed",
                    hint=f"allowed output names: {', '.join(allowed)}{extra}",
                )
            if mapping.output in seen:
                raise RuleBroken(
                    f"output name {mapping.output!r} is mapped twice",
                    hint="map each output name from one attribute",
                )
            seen.add(mapping.output)
        if alias and alias not in seen:
            raise RuleBroken(
                f"alias column {alias!r} is set but no mapping outputs it",
                hint=f"add --map ATTRIBUTE={alias}, or drop --alias-column",
            )
        return self
