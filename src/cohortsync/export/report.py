"""The report of one export run: what was read, sent, skipped, and how fast.

The same object is stored in the run history, printed as a summary for
people and as one JSON object for scripts (``--json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


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

    def render(self, console: Console) -> None:
        """A short human summary."""
        title = "Dry run: nothing sent" if self.dry_run else f"Export {self.status}"
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        if self.run_id:
            table.add_row("run", self.run_id)
        table.add_row("cohort", f"{self.cohort_id} ({self.operation})")
        table.add_row("rows read", f"{self.rows_read:,}")
        if self.plan is not None:
            by_kind = ", ".join(f"{k} {v:,}" for k, v in self.plan["identifiers"].items())
            table.add_row("to send", by_kind or "nothing")
            table.add_row("requests", f"{self.plan['requests']:,} (1 name + batches)")
        else:
            by_kind = ", ".join(f"{k} {v:,}" for k, v in self.sent.items())
            table.add_row("sent", by_kind or "nothing")
        table.add_row(
            "skipped",
            ", ".join(f"{k} {v:,}" for k, v in self.skipped.items()),
        )
        if self.ignored_columns:
            table.add_row("ignored columns", ", ".join(self.ignored_columns))
        if not self.dry_run:
            table.add_row("requests", f"{self.requests:,} ({self.retries:,} retries)")
            table.add_row(
                "duration",
                f"{self.duration_s:.2f} s, {self.identifiers_per_second:,.0f} identifiers/s",
            )
        console.print(table)
        self._render_invalid(console)
        if self.plan is not None and self.plan.get("first_request") is not None:
            console.print("first cohorts/users request (keys masked, identifiers shortened):")
            console.print_json(data=_shortened(self.plan["first_request"]))

    def _render_invalid(self, console: Console) -> None:
        """The identifiers Braze would refuse, one line each (never wrapped: values are escaped)."""
        if not self.invalid:
            return
        count = self.skipped.get("invalid", 0)
        plural = "s" if count != 1 else ""
        if self.dry_run and not self.skip_invalid:
            head = (
                f"the export would fail on {count:,} identifier{plural} Braze would refuse "
                "(fix the query, or pass --skip-invalid to skip them); the first:"
            )
        else:
            head = f"skipped {count:,} identifier{plural} Braze would refuse:"
        lines = [
            f"row {item['row']:,}: {item['kind']} {item['value']} {item['reason']}"
            for item in self.invalid
        ]
        if len(lines) == 1:
            console.print(f"{head} {lines[0]}", soft_wrap=True, markup=False, highlight=False)
            return
        console.print(head, soft_wrap=True, markup=False, highlight=False)
        for line in lines:
            console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)


def _shortened(body: dict[str, Any], keep: int = 5) -> dict[str, Any]:
    """A request body with each identifier list cut to ``keep`` items, for humans."""
    changes = []
    for change in body.get("cohort_changes", []):
        short: dict[str, Any] = {}
        for key, value in change.items():
            if isinstance(value, list) and len(value) > keep:
                short[key] = [*value[:keep], f"… {len(value) - keep:,} more"]
            else:
                short[key] = value
        changes.append(short)
    return {**body, "cohort_changes": changes}
