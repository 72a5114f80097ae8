"""Line charts drawn on the server as SVG: a job's cohort size and identifiers sent per run.

The console ships no charting script (its Content-Security-Policy allows
only its own files, and a chart of 30 points needs none): a chart is SVG
markup with presentation attributes only (no ``style``), readable without
the picture: the ``<svg>`` names itself with ``<title>`` and ``<desc>``,
every point carries its value in a ``<title>``, and a visually hidden table
beside it lists the values for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from markupsafe import Markup, escape

Point = tuple[dt.datetime, float]

WIDTH = 560
HEIGHT = 220
# Room for the value labels on the left and the dates under the axis.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 36


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 4, 6, 8 x 10^n at or above ``value``: a round top for the axis.

    Each but 1 halves to a whole number, so the middle grid line of a count is a count.
    """
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 4, 6, 8, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def line_chart(
    points: Sequence[Point], *, title: str, chart_id: str, value_label: str = "value"
) -> Markup:
    """An SVG line chart of ``points`` (oldest first) with its axes, labels and title.

    The x axis is the runs in order (one step per run, so a burst of runs on
    one day stays readable), labelled with the first and last run's time; the
    y axis starts at 0 and ends at a round number above the largest value.
    ``chart_id`` makes the ids of the title and description unique on the page.
    """
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    values = [value for _, value in points]
    top = nice_ceiling(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w / 2 if len(points) == 1 else plot_w * index / (len(points) - 1))

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    if points:
        summary = (
            f"{len(points)} runs from {_when(points[0][0])} to {_when(points[-1][0])}; "
            f"latest {_number(values[-1])}, lowest {_number(min(values))}, "
            f"highest {_number(max(values))}."
        )
    else:
        summary = "No runs to show yet."
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(title_id)}">{escape(title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(summary)}</desc>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="#1d2433">'
        f"{escape(title)}</text>",
    ]
    for tick in (0.0, top / 2, top):  # horizontal grid lines with their values
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" '
            f'stroke="#dde2ea" stroke-width="1"/>'
            f'<text x="{LEFT - 8}" y="{ty + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5b6577">{escape(_number(tick))}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#5b6577" '
        f'stroke-width="1"/><line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}" stroke="#5b6577" stroke-width="1"/>'
    )
    if points:
        below = HEIGHT - BOTTOM + 18
        parts.append(
            f'<text x="{LEFT}" y="{below}" font-size="11" fill="#5b6577">'
            f"{escape(_when(points[0][0]))}</text>"
        )
        if len(points) > 1:
            parts.append(
                f'<text x="{WIDTH - RIGHT}" y="{below}" font-size="11" text-anchor="end" '
                f'fill="#5b6577">{escape(_when(points[-1][0]))}</text>'
            )
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="#3a4bd8" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
        for index, (moment, value) in enumerate(points):
            parts.append(
                f'<circle class="point" cx="{x(index):.1f}" cy="{y(value):.1f}" r="3.5" '
                f'fill="#3a4bd8"><title>{escape(_when(moment))}: {escape(_number(value))} '
                f"{escape(value_label)}</title></circle>"
            )
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>{escape(_when(moment))}</td><td>{escape(_number(value))}</td></tr>"
        for moment, value in points
    )
    parts.append(
        f'<table class="visually-hidden"><caption>{escape(title)}</caption>'
        f'<thead><tr><th scope="col">Run started (UTC)</th><th scope="col">'
        f"{escape(value_label.capitalize())}</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return Markup("".join(parts))


def cohort_size(report: dict[str, object]) -> float | None:
    """The cohort's size after a run, as its report tells it.

    A mirror run knows it: the members its result holds (``entries`` plus
    ``unchanged``, the mirror's ``result_members``). An add or remove run only
    knows what it sent, so its size is the identifiers it sent (added or
    removed); ``None`` for a report with neither.
    """
    mirror = report.get("mirror")
    if isinstance(mirror, dict) and "entries" in mirror:
        return float(int(mirror["entries"]) + int(mirror.get("unchanged", 0)))
    sent = report.get("sent_total")
    return float(sent) if isinstance(sent, int | float) else None


def job_series(views: Sequence[dict[str, object]]) -> tuple[list[Point], list[Point]]:
    """The points of a job's two charts, oldest first, from its run views (any order).

    Cohort size: the succeeded runs (:func:`cohort_size`); a failed run says
    nothing of the cohort. Identifiers sent: every run with a report,
    failed and interrupted ones included (what they sent did reach Braze).
    """
    ordered = sorted(views, key=lambda view: str(view["started_at"]))
    sizes: list[Point] = []
    sent: list[Point] = []
    for view in ordered:
        report = view.get("report")
        if not isinstance(report, dict):
            continue
        started = dt.datetime.fromisoformat(str(view["started_at"]))
        size = cohort_size(report)
        if view["status"] == "succeeded" and size is not None:
            sizes.append((started, size))
        sent.append((started, float(report.get("sent_total", 0) or 0)))
    return sizes, sent
