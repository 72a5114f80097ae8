"""Runs: the run history, a run's page with its live progress, Resume and Stop, charts per job.

Every page draws what :mod:`cohortsync.jobs.run_history` returns, as
``cohortsync runs list/show/resume`` does. A run started from this console
is followed through its launch (:mod:`cohortsync.console.launches`: stage,
batches, rate, ETA); a run of another process (the CLI, the scheduler)
through the batches its checkpoints recorded in the catalog. While a run is
live, its page polls a fragment every second; the fragment of a finished run
carries no trigger, so the polling stops with the final report.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from cohortsync.console.charts import job_series, line_chart
from cohortsync.console.context import Console, console_of
from cohortsync.console.launches import EXPORT_JOB, Launch, LaunchProgress, launched
from cohortsync.errors import CohortsyncError, ConfigError
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter
from cohortsync.jobs.run_history import (
    STATUSES,
    check_job,
    check_resume,
    check_status,
    error_parts,
    exit_reason,
    list_run_views,
    resume_run,
    run_filters,
    show_run_view,
    status_text,
)
from cohortsync.web.pages import prefixed, redirect

router = APIRouter()

PAGE_SIZE = 50
CHART_RUNS = 30  # the runs of a job its charts show
STAGE_NAMES = {
    "staging": "reading the source",
    "planning": "planning the changes",
    "sending": "sending batches",
    "committing": "committing the run",
}
REPORT_DEFAULTS = ExportReport(run_id=None, cohort_id="", operation="").to_dict()


@router.get("/runs")
def history_page(
    request: Request,
    console: Console = Depends(console_of),
    cohort: str = "",
    job: str = "",
    status: str = "",
    before: str = "",
) -> Response:
    values = {"cohort": cohort.strip(), "job": job.strip(), "status": status.strip()}
    failure: CohortsyncError | None = None
    views: list[dict[str, Any]] = []
    try:
        check_status(values["status"] or None)
        check_job(values["job"] or None)
        views = list_run_views(
            console.settings,
            cohort_id=values["cohort"] or None,
            status=values["status"] or None,
            job=values["job"] or None,
            limit=PAGE_SIZE + 1,
            before=before or None,
        )
    except ConfigError as error:
        failure = error
    older = views[PAGE_SIZE - 1]["id"] if len(views) > PAGE_SIZE else None
    filters = run_filters(console.settings)
    return console.pages.render(
        request,
        "console/runs_list.html",
        {
            "values": values,
            "failure": failure,
            "runs": [_row(view) for view in views[:PAGE_SIZE]],
            "older": older,
            "before": before,
            "filter_query": urlencode({k: v for k, v in values.items() if v}),
            "job_options": [("", "All jobs")] + [(name, name) for name in filters["jobs"]],
            "cohort_options": [("", "All cohorts")] + [(c, c) for c in filters["cohorts"]],
            "status_options": [("", "Any status")] + [(s, s.capitalize()) for s in STATUSES],
        },
        status_code=422 if failure else 200,
    )


@router.get("/runs/charts")
def charts_fragment(
    request: Request, console: Console = Depends(console_of), job: str = ""
) -> Response:
    """The charts of one saved job's last runs, as a fragment other pages load with htmx."""
    check_job(job or None)
    if not job:
        raise ConfigError("no job to chart", hint="give ?job=query:NAME or ?job=activation:NAME")
    views = list_run_views(console.settings, job=job, limit=CHART_RUNS)
    sizes, sent = job_series(views)
    chart_id = "chart-" + "".join(c if c.isalnum() else "-" for c in job)
    return console.pages.render(
        request,
        "console/_runs_charts.html",
        {
            "job": job,
            "runs": len(views),
            "size_chart": line_chart(
                sizes,
                title=f"Cohort size, last {len(sizes)} successful runs",
                chart_id=chart_id + "-size",
                value_label="members",
            ),
            "sent_chart": line_chart(
                sent,
                title=f"Identifiers sent, last {len(sent)} runs",
                chart_id=chart_id + "-sent",
                value_label="identifiers",
            ),
        },
    )


@router.get("/runs/launches/{launch_id}")
def launch_page(
    request: Request, launch_id: str, console: Console = Depends(console_of)
) -> Response:
    launch = _launch(console, launch_id)
    if launch.run_id is not None:
        return redirect(request, f"/runs/{launch.run_id}")
    return console.pages.render(request, "console/runs_launch.html", _launch_context(launch))


@router.get("/runs/launches/{launch_id}/status")
def launch_status(
    request: Request, launch_id: str, console: Console = Depends(console_of)
) -> Response:
    """The launch's state; once its run is recorded, htmx sends the browser on to the run."""
    launch = _launch(console, launch_id)
    if launch.run_id is not None:
        return HTMLResponse(
            "", headers={"HX-Redirect": prefixed(request, f"/runs/{launch.run_id}")}
        )
    return console.pages.render(request, "console/_runs_launch.html", _launch_context(launch))


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, console: Console = Depends(console_of)) -> Response:
    return console.pages.render(request, "console/runs_show.html", _run_context(console, run_id))


@router.get("/runs/{run_id}/live")
def run_live(request: Request, run_id: str, console: Console = Depends(console_of)) -> Response:
    """The part of the run's page that changes while it runs: polled every second while live."""
    return console.pages.render(request, "console/_runs_live.html", _run_context(console, run_id))


@router.post("/runs/{run_id}/resume")
def resume(
    request: Request,
    run_id: str,
    console: Console = Depends(console_of),
    data_import_key: str = Form(""),
) -> Response:
    view = show_run_view(console.settings, run_id)
    if not view["resumable"]:
        raise ConfigError(
            f"run {run_id} is {status_text(view)}: there is nothing to resume",
            hint="only an interrupted run, or one whose process died, can be resumed",
        )
    key = data_import_key.strip() or None
    try:
        check_resume(console.settings, run_id, key)
    except ConfigError as error:
        context = _run_context(console, run_id)
        context["key_error"] = error.message
        return console.pages.render(request, "console/runs_show.html", context, status_code=422)

    def work(reporter: RunReporter, stop: Any) -> Any:
        return resume_run(
            run_id, reporter=reporter, stop=stop, settings=console.settings, data_import_key=key
        )

    sent_before = int((view["report"] or {}).get("sent_total") or 0)
    launch = console.launches.start(
        f"Resume of run {run_id}",
        work,
        job=str(view["job"].get("job") or EXPORT_JOB),
        progress=LaunchProgress.resuming(view["acknowledged_batches"], sent_before),
        resumes=run_id,
    )
    return launched(request, launch)


@router.post("/runs/{run_id}/stop")
def stop(request: Request, run_id: str, console: Console = Depends(console_of)) -> Response:
    launch = console.launches.for_run(run_id)
    if launch is not None and not launch.done:
        launch.stop.request("the console user")
    return redirect(request, f"/runs/{run_id}")


# -- what the templates draw ----------------------------------------------------------------


def _launch(console: Console, launch_id: str) -> Launch:
    launch = console.launches.get(launch_id)
    if launch is None:
        raise ConfigError(
            f"unknown launch {launch_id!r}: the console was restarted or the address is wrong",
            hint="find the run in the run history",
        )
    return launch


def _launch_context(launch: Launch) -> dict[str, Any]:
    state = "failed" if launch.error else ("finished" if launch.done else "starting")
    return {"launch": launch, "state": state, "stage": launch.progress.stage or "starting"}


def _run_context(console: Console, run_id: str) -> dict[str, Any]:
    view = show_run_view(console.settings, run_id)
    launch = console.launches.for_run(run_id)
    following = launch is not None and not launch.done
    live = following or (view["status"] == "running" and view["alive"])
    # A report written by an older release may lack a count: it shows as 0, not as an error.
    report = {**REPORT_DEFAULTS, **view["report"]} if view["report"] else {}
    message, hint = error_parts(view["error"])
    if launch is not None and launch.error is not None and launch.done:
        message, hint = launch.error.message, launch.error.hint
    job = view["job"]
    return {
        "run": view,
        "row": _row(view),
        "report": report,
        "job": job,
        "source": job.get("source") or {},
        "destination": job.get("destination") or {},
        "live": live,
        "launch": launch if following else None,
        "progress": _progress(launch, view) if live else None,
        "can_stop": following,
        "reason": exit_reason(view),
        "message": message if view["error"] else None,
        "hint": hint if view["error"] else None,
        "needs_key": view["resumable"] and not (job.get("destination") or {}).get("auth_name"),
        "plan": _plan(report),
        "key_error": None,
    }


def _progress(launch: Launch | None, view: dict[str, Any]) -> dict[str, Any]:
    """A live run's progress: its launch's, or the checkpoints of a run of another process."""
    if launch is None:
        return {
            "stage": STAGE_NAMES["sending"],
            "batches": view["acknowledged_batches"],
            "identifiers": None,
            "total": None,
            "percent": None,
            "rate": None,
            "eta": None,
            "source": "the run's checkpoints in the catalog",
        }
    progress = launch.progress
    return {
        "stage": STAGE_NAMES.get(progress.stage or "", "starting"),
        "rows_read": progress.rows_read,
        "batches": progress.batches,
        "identifiers": progress.identifiers,
        "total": progress.total,
        "percent": progress.percent,
        "rate": f"{progress.rate:,.0f} identifiers/s" if progress.rate else None,
        "eta": _seconds(progress.eta_seconds) if progress.eta_seconds is not None else None,
        "source": None,
    }


def _plan(report: dict[str, Any]) -> dict[str, Any] | None:
    """A mirror's diff per kind (adds, removes, unchanged), or what an add or remove sent."""
    mirror = report.get("mirror")
    if mirror:
        kinds = [
            {
                "kind": kind,
                "adds": counts.get("entries", 0),
                "removes": counts.get("exits", 0),
                "unchanged": counts.get("result", 0) - counts.get("entries", 0),
            }
            for kind, counts in (mirror.get("by_kind") or {}).items()
        ]
        return {"mirror": mirror, "kinds": kinds}
    if any(report.get("sent", {}).values()):
        adding = report.get("operation") != "remove"
        kinds = [
            {
                "kind": kind,
                "adds": count if adding else 0,
                "removes": 0 if adding else count,
                "unchanged": None,
            }
            for kind, count in report["sent"].items()
        ]
        return {"mirror": None, "kinds": kinds}
    return None


def _row(view: dict[str, Any]) -> dict[str, Any]:
    report = view["report"] or {}
    dead = view["status"] == "running" and not view["alive"]
    return {
        "id": view["id"],
        "status": "dead" if dead else view["status"],
        "badge": "interrupted" if dead else view["status"],
        "status_text": status_text(view),
        "job": view["job"].get("job") or "",
        "cohort": view["cohort_id"] or "",
        "operation": view["operation"],
        "rows_read": report.get("rows_read") if report else None,
        "sent": report.get("sent_total") if report else None,
        "started": _when(view["started_at"]),
        "finished": _when(view["finished_at"]) if view["finished_at"] else None,
        "duration": _seconds(view["duration_s"]) if view["duration_s"] is not None else "-",
    }


def _when(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"
