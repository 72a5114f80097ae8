"""Deviation triggers of a saved job's alerts, and the hold that acts on them before sending.

A cohort whose size jumps or whose removals pile up is often a broken query
(a wrong join, a table half loaded), and the run that sends it changes the
cohort in Braze. The two deviation triggers of :class:`~cohortsync.definitions.Alerts`
compare a run with the job's last successful run:

- ``size_change_pct``: the cohort's size (the identifiers of the result: a
  mirror's result members, else the identifiers planned) differs from the
  last successful run's by more than this share of it;
- ``removals``: the run removes more than this many identifiers (a mirror's
  removes, every identifier of a ``remove`` export).

After a run they are evaluated on its report (:func:`report_deviations`).
With ``hold``, :class:`HoldCheck` evaluates them on the plan, between
planning and sending, where the mirror guards stand: a deviation fails the
run with :class:`~cohortsync.errors.AlertHeld` naming the trigger and its
numbers, and nothing is sent. The numbers are computed the same way in both
places, so a run the hold let through never alerts for the same trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cohortsync.definitions.alerts import REMOVALS, SIZE_CHANGE
from cohortsync.errors import AlertHeld
from cohortsync.export.stages import Planned


@dataclass(frozen=True)
class Fired:
    """A trigger that fired: its name, the value measured, its threshold and the counts."""

    trigger: str
    value: float | None
    threshold: float | None
    counts: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "value": self.value,
            "threshold": self.threshold,
            **self.counts,
            "text": self.text,
        }


def size_change(size: int, previous: int | None, threshold: float | None) -> Fired | None:
    """The size change trigger, if the size moved by more than ``threshold`` percent.

    A first run (no ``previous``) or a previous size of 0 has no baseline to
    compare with, so it never fires.
    """
    if threshold is None or not previous:
        return None
    change = 100 * (size - previous) / previous
    if abs(change) <= threshold:
        return None
    return Fired(
        SIZE_CHANGE,
        round(change, 2),
        threshold,
        {"size": size, "previous_size": previous},
        f"cohort size changed by {change:+.1f}% (from {previous:,} to {size:,} identifiers), "
        f"more than {threshold:g}%",
    )


def removals(count: int, threshold: int | None) -> Fired | None:
    """The removals trigger, if more than ``threshold`` identifiers are removed."""
    if threshold is None or count <= threshold:
        return None
    return Fired(
        REMOVALS,
        count,
        threshold,
        {"removals": count},
        f"{count:,} identifiers removed, more than {threshold:,}",
    )


def planned_size(planned: Planned) -> int:
    """The cohort's size a plan leads to: a mirror's result members, else its identifiers."""
    if planned.mirror is not None and "result_members" in planned.mirror:
        return int(planned.mirror["result_members"])
    return planned.plan.total


def planned_removals(planned: Planned) -> int:
    """The identifiers a plan removes."""
    return sum(count for (_, remove), count in planned.plan.counts.items() if remove)


def report_size(report: Mapping[str, Any] | None) -> int | None:
    """The cohort's size a run's report gives; ``None`` when the run never planned.

    A mirror's result members; a saved query without export, its rows; any
    other export, the identifiers it sent (all of its plan, once it succeeded).
    """
    if not report:
        return None
    mirror = report.get("mirror")
    if isinstance(mirror, Mapping) and "result_members" in mirror:
        return int(mirror["result_members"])
    if "rows" in report and "sent" not in report:
        return int(report["rows"])
    if "sent_total" in report:
        return int(report["sent_total"])
    return None


def report_removals(report: Mapping[str, Any] | None) -> int:
    """The identifiers a run's report says it removed."""
    if not report:
        return 0
    mirror = report.get("mirror")
    if isinstance(mirror, Mapping):
        return int(mirror.get("removes", 0))
    if report.get("operation") == "remove":
        return int(report.get("sent_total", 0))
    return 0


@dataclass(frozen=True)
class HoldCheck:
    """The deviation thresholds a saved job holds its runs for, and its last successful size.

    Built by the job before its run (:mod:`cohortsync.jobs.alerts`) and given
    to :func:`~cohortsync.export.run.run_export`, which calls :meth:`check`
    once the plan is written and before the first request. It is not part of
    the run's spec: the same job with another baseline is the same export.
    """

    job: str
    size_change_pct: float | None = None
    removals: int | None = None
    previous_size: int | None = None

    def fired(self, planned: Planned) -> list[Fired]:
        """The deviation triggers the plan fires."""
        found = [
            size_change(planned_size(planned), self.previous_size, self.size_change_pct),
            removals(planned_removals(planned), self.removals),
        ]
        return [item for item in found if item is not None]

    def check(self, planned: Planned) -> None:
        """Hold the run back when its plan fires a deviation trigger.

        Raises:
            AlertHeld: naming the first trigger and its numbers (every one in
                ``triggers``); nothing has been sent.
        """
        fired = self.fired(planned)
        if not fired:
            return
        options = {SIZE_CHANGE: "--alert-size-change", REMOVALS: "--alert-removals"}
        raise AlertHeld(
            f"alert hold of {self.job}: {'; '.join(item.text for item in fired)}; "
            "the run was held back and nothing was sent",
            hint=f"check the source; if the change is expected, raise "
            f"{' and '.join(options[item.trigger] for item in fired)} or save the job "
            "without --alert-hold, then run it again",
            triggers=[item.to_dict() for item in fired],
        )
