"""The report of one export run: what was read, sent, skipped, and how fast.

The same object is stored in the run history, printed as a summary for
people and as one JSON object for scripts (``--json``); the command line
draws it (:func:`cohortsync.cli.run_report.render_report`), the export only
assembles it, once, from what its stages returned (:meth:`ExportReport.from_stages`,
:mod:`cohortsync.export.stages`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cohortsync.export.spec import ExportSpec
from cohortsync.export.stages import Planned, Recorded, Sent, Staged


@dataclass(frozen=True)
class ExportReport:
    """Counts and timings of one export run.

    ``sent`` counts identifiers acknowledged by the server, by kind;
    ``skipped`` counts NULL, empty, invalid (Braze would refuse them: too long,
    control characters; skipped with ``--skip-invalid``, shown by a dry run)
    and duplicate values over every kind; ``invalid`` names the first invalid
    ones (kind, row of the result, value, reason);
    ``requests`` counts every HTTP request (the cohort name call, batches and
    retries); ``retries`` is how many of them were retries.
    ``unaddressable`` counts, by kind, the distinct identifiers the destination
    cannot address, left out before sending (device ids on ``/users/track``);
    ``match`` is a ``rest-attribute`` run's match report: the attribute
    objects acknowledged, the non-fatal errors of the answers by reason, and
    the first few with their identifiers.
    ``concurrency`` is how many requests the send kept in flight: the setting
    (a count, or ``auto``), the highest and the last count; absent when the
    run sent nothing.
    """

    run_id: str | None
    cohort_id: str
    operation: str
    status: str = "running"
    rows_read: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(
        default_factory=lambda: {"null": 0, "empty": 0, "invalid": 0, "duplicate": 0}
    )
    skipped_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    batches: int = 0
    requests: int = 0
    retries: int = 0
    duration_s: float = 0.0
    identifiers_per_second: float = 0.0
    dry_run: bool = False
    skip_invalid: bool = False
    plan: dict[str, Any] | None = None
    mirror: dict[str, Any] | None = None  # a mirror run's diff counts (export.mirror)
    destination: str = "partner-cohort"
    unaddressable: dict[str, int] = field(default_factory=dict)
    match: dict[str, Any] | None = None
    concurrency: dict[str, Any] | None = None

    @classmethod
    def from_stages(
        cls,
        spec: ExportSpec,
        *,
        run_id: str | None,
        status: str,
        duration_s: float = 0.0,
        dry_run: bool = False,
        recorded: Recorded | None = None,
        staged: Staged | None = None,
        planned: Planned | None = None,
        sent: Sent | None = None,
        preview: dict[str, Any] | None = None,
    ) -> ExportReport:
        """The report of a run that got as far as the results given.

        Args:
            recorded: what the interrupted attempt a resumed run continues
                recorded; its staging stands for the run's, its acknowledged
                identifiers are added to ``sent``'s.
            staged, planned, sent: what the stages the run went through returned.
            preview: a dry run's plan (:func:`cohortsync.export.run.dry_run_plan`).
        """
        recorded = recorded or Recorded()
        staged = staged or recorded.staged
        sent = sent or Sent()
        totals = dict.fromkeys(staged.kinds, 0)
        for counts in (recorded.sent, sent.identifiers):
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + count
        mirror = recorded.mirror
        if planned is not None and planned.mirror is not None:
            mirror = planned.mirror
        per_second: float = 0.0  # a dry run sends nothing
        if not dry_run:
            per_second = round(sum(totals.values()) / duration_s, 1) if duration_s else 0
        return cls(
            run_id=run_id,
            cohort_id=spec.cohort_id,
            operation=spec.operation,
            status=status,
            rows_read=staged.rows_read,
            sent=totals,
            skipped=dict(staged.skipped),
            skipped_by_kind={kind: dict(c) for kind, c in staged.skipped_by_kind.items()},
            invalid=[dict(item) for item in staged.invalid],
            ignored_columns=list(staged.ignored_columns),
            batches=planned.batches if planned is not None else 0,
            requests=sent.requests,
            retries=sent.retries,
            duration_s=duration_s,
            identifiers_per_second=per_second,
            dry_run=dry_run,
            skip_invalid=spec.skip_invalid,
            plan=preview,
            mirror=None if dry_run else (dict(mirror) if mirror is not None else None),
            destination=spec.destination.type,
            unaddressable=dict(staged.unaddressable),
            match=recorded.match_with(sent),
            concurrency=dict(sent.concurrency) if sent.concurrency is not None else None,
        )

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sent_total"] = self.sent_total
        for optional in ("plan", "mirror", "match", "concurrency"):
            if data[optional] is None:
                del data[optional]
        if not data["unaddressable"]:
            del data["unaddressable"]
        if data["destination"] == "partner-cohort":  # as reports were before attribute delivery
            del data["destination"]
        return data
