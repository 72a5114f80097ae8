"""The report of one export run: what was read, sent, skipped, and how fast.

The same object is stored in the run history, printed as a summary for
people and as one JSON object for scripts (``--json``); the command line
draws it (:func:`cohortsync.cli.output.render_report`), the export only
assembles it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ExportReport:
    """Counts and timings of one export run.

    ``sent`` counts identifiers acknowledged by the server, by kind;
    ``skipped`` counts NULL, empty, invalid (Braze would refuse them: too long,
    control characters; skipped with ``--skip-invalid``, shown by a dry run)
    and duplicate values over every kind; ``invalid`` names the first invalid
    ones (kind, row of the result, value, reason);
    ``requests`` counts every HTTP request (the cohort name call, batches and
    retries); ``retries`` is how many of them were retries.
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

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sent_total"] = self.sent_total
        for optional in ("plan", "mirror"):
            if data[optional] is None:
                del data[optional]
        return data
