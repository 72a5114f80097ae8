"""A run's report for people: the summary table ``export``, ``runs resume`` and jobs print.

The export assembles the report (:class:`~cohortsync.export.report.ExportReport`);
how it looks on a terminal is decided here, with rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when a report is drawn, not by --json
    from rich.console import Console

    from cohortsync.export.report import ExportReport


def render_report(console: Console, report: ExportReport) -> None:
    """A short human summary of one run's report."""
    from rich.table import Table

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
        opening = "" if report.plan["requests"] == report.plan["batches"] else "1 name + "
        table.add_row("requests", f"{report.plan['requests']:,} ({opening}batches)")
    else:
        by_kind = ", ".join(f"{k} {v:,}" for k, v in report.sent.items())
        table.add_row("sent", by_kind or "nothing")
    table.add_row(
        "skipped",
        ", ".join(f"{k} {v:,}" for k, v in report.skipped.items()),
    )
    if report.ignored_columns:
        table.add_row("ignored columns", ", ".join(report.ignored_columns))
    if report.unaddressable:
        table.add_row("not addressable", unaddressable_line(report.unaddressable))
    if report.match is not None:
        table.add_row("match", match_line(report.match))
    if not report.dry_run:
        table.add_row("requests", f"{report.requests:,} ({report.retries:,} retries)")
        if report.concurrency is not None:
            table.add_row("concurrency", concurrency_line(report.concurrency))
        table.add_row(
            "duration",
            f"{report.duration_s:.2f} s, {report.identifiers_per_second:,.0f} identifiers/s",
        )
    console.print(table)
    _render_invalid(console, report)
    if report.plan is not None and report.plan.get("first_request") is not None:
        url = report.plan.get("url")
        if url is not None:  # /users/track: the key travels in a header
            console.print(f"first request: POST {url}", soft_wrap=True, highlight=False)
            for name, value in report.plan.get("headers", {}).items():
                console.print(f"  {name}: {value}", soft_wrap=True, markup=False, highlight=False)
            console.print("its body (objects shortened):")
        else:
            console.print("first cohorts/users request (keys masked, identifiers shortened):")
        console.print_json(data=_shortened(report.plan["first_request"]))


def concurrency_line(concurrency: dict[str, Any]) -> str:
    """How many requests the run kept under way: a fixed count, or ``auto``'s highest and last."""
    if concurrency["threads"] != "auto":
        return f"{concurrency['threads']} threads"
    return f"auto: up to {concurrency['max']} threads, {concurrency['final']} at the end"


def match_line(match: dict[str, Any]) -> str:
    """A ``rest-attribute`` run's match report in one line: objects, errors by reason."""
    line = (
        f"{match.get('objects', 0):,} objects acknowledged, {match.get('processed', 0):,} "
        f"processed, {match.get('errors', 0):,} errors"
    )
    reasons = match.get("reasons") or {}
    if reasons:
        line += " (" + "; ".join(f"{reason}: {n:,}" for reason, n in reasons.items()) + ")"
    return line


def unaddressable_line(unaddressable: dict[str, int]) -> str:
    """The identifiers the destination could not address, left out before sending."""
    return ", ".join(f"{kind} {count:,} skipped" for kind, count in unaddressable.items())


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
    objects = body.get("attributes")
    if isinstance(objects, list):
        more = [f"… {len(objects) - keep:,} more"] if len(objects) > keep else []
        return {**body, "attributes": [*objects[:keep], *more]}
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
