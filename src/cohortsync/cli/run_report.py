"""A run's report for people: the summary table ``export``, ``runs resume`` and jobs print.

The export assembles the report (:class:`~cohortsync.export.report.ExportReport`);
how it looks on a terminal is decided here, with rich.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from cohortsync.export.report import ExportReport


def render_report(console: Console, report: ExportReport) -> None:
    """A short human summary of one run's report."""
    title = "Dry run: nothing sent" if report.dry_run else f"Export {report.status}"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    if report.run_id:
        table.add_row("run", report.run_id)
    table.add_row("cohort", f"{report.cohort_id} ({report.operation})")
    table.add_row("rows read", f"{report.rows_read:,}")
    if report.plan is not None:
        by_kind = ", ".join(f"{k} {v:,}" for k, v in report.plan["identifiers"].items())
        table.add_row("to send", by_kind or "nothing")
        table.add_row("requests", f"{report.plan['requests']:,} (1 name + batches)")
    else:
        by_kind = ", ".join(f"{k} {v:,}" for k, v in report.sent.items())
        table.add_row("sent", by_kind or "nothing")
    table.add_row(
        "skipped",
        ", ".join(f"{k} {v:,}" for k, v in report.skipped.items()),
    )
    if report.ignored_columns:
        table.add_row("ignored columns", ", ".join(report.ignored_columns))
    if not report.dry_run:
        table.add_row("requests", f"{report.requests:,} ({report.retries:,} retries)")
        table.add_row(
            "duration",
            f"{report.duration_s:.2f} s, {report.identifiers_per_second:,.0f} identifiers/s",
        )
    console.print(table)
    _render_invalid(console, report)
    if report.plan is not None and report.plan.get("first_request") is not None:
        console.print("first cohorts/users request (keys masked, identifiers shortened):")
        console.print_json(data=_shortened(report.plan["first_request"]))


def _render_invalid(console: Console, report: ExportReport) -> None:
    """The identifiers Braze would refuse, one line each (never wrapped: values are escaped)."""
    if not report.invalid:
        return
    count = report.skipped.get("invalid", 0)
    plural = "s" if count != 1 else ""
    if report.dry_run and not report.skip_invalid:
        head = (
            f"the export would fail on {count:,} identifier{plural} Braze would refuse "
            "(fix the query, or pass --skip-invalid to skip them); the first:"
        )
    else:
        head = f"skipped {count:,} identifier{plural} Braze would refuse:"
    lines = [
        f"row {item['row']:,}: {item['kind']} {item['value']} {item['reason']}"
        for item in report.invalid
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
