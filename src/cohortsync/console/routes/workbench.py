"""Data Workbench > Queries: saved queries, New Query, Run, Export Results, Dry run, Save.

The editor builds the same definitions as ``cohortsync query save``
(:class:`~cohortsync.definitions.Query` and its
:class:`~cohortsync.definitions.QueryExport`) and calls the same functions:
*Run* is ``cohortsync warehouse query`` (:func:`~cohortsync.warehouse.preview.preview`:
the result streams through once, the first rows kept and the rest only
counted), *Dry run* is ``query run --dry-run`` for the settings as typed
(:func:`cohortsync.queries.plan_export`), *Save* is
:func:`cohortsync.queries.save_query` and *Run now* is
:func:`cohortsync.queries.run_query` in a launch. No key is ever sent back:
the dry run's sample body has its keys masked by the export itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cohortsync import queries
from cohortsync.catalog.auths import list_auths
from cohortsync.console.alert_form import (
    FORMAT_OPTIONS,
    alert_data,
    alert_problems,
    alert_values,
    blank_alert_values,
    saved_alert_values,
)
from cohortsync.console.attribute_form import (
    attribute_context,
    attribute_data,
    attribute_values,
    is_rest_attribute,
)
from cohortsync.console.context import Console, console_of
from cohortsync.console.field_errors import said
from cohortsync.console.launches import launched
from cohortsync.console.schedule_form import UPCOMING_RUNS, time_zones
from cohortsync.definitions import Query, QueryExport, field_problems
from cohortsync.definitions.fields import DEFAULT_MAX_REMOVE_PCT, DEFAULT_THREADS, OPERATIONS
from cohortsync.errors import CohortsyncError, ConfigError
from cohortsync.jobs.cron import check_cron, upcoming_slots
from cohortsync.jobs.run_history import latest_run_views, list_run_views
from cohortsync.warehouse import open_engine
from cohortsync.warehouse.preview import Preview, preview
from cohortsync.web.pages import prefixed, redirect

router = APIRouter()

# Rows of a result the page shows; the rest are only counted.
SHOWN_ROWS = 100
# Saved queries per page of the list.
LIST_PAGE = 50
# Upcoming runs shown under a schedule as it is typed.

OPERATION_TEXT = {
    "add": "add: put the result's people in the cohort",
    "remove": "remove: take the result's people out of the cohort",
    "mirror": "mirror: keep the cohort equal to the latest result",
}
assert set(OPERATION_TEXT) == set(OPERATIONS)


def _number(value: float) -> str:
    """A number as typed in a field: ``50`` rather than ``50.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Editor:
    """What the editor's form holds: every field as typed, and the result's columns."""

    values: dict[str, str]
    columns: list[str] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return self.values["sql"]

    def export_data(self, rest_attribute: bool) -> dict[str, Any] | None:
        """The export definition's fields, or ``None`` when no authentication is chosen.

        The attribute fields only for a ``rest-attribute`` authentication
        (:mod:`cohortsync.console.attribute_form`).
        """
        v = self.values
        if not v["auth"]:
            return None
        return {
            "auth": v["auth"],
            "cohort_id": v["cohort_id"],
            "cohort_name": v["cohort_name"] or None,
            "operation": v["operation"],
            "alias_column": v["alias_column"] or None,
            "threads": v["threads"],
            "skip_invalid": v["skip_invalid"] == "on",
            "mirror": {
                "allow_empty": v["allow_empty"] == "on",
                "max_remove_pct": v["max_remove_pct"],
            },
            **attribute_data(v, rest_attribute),
        }

    def export_without_auth(self) -> dict[str, str]:
        """The problem of export settings typed without an authentication to send with."""
        v = self.values
        if not v["auth"] and (v["cohort_id"] or v["cohort_name"] or v["alias_column"]):
            return {"auth": "Choose the authentication to export with (or clear the Cohort ID)"}
        return {}


def editor_form(
    sql: str = Form(""),
    name: str = Form(""),
    auth: str = Form(""),
    cohort_id: str = Form(""),
    cohort_name: str = Form(""),
    operation: str = Form("add"),
    alias_column: str = Form(""),
    threads: str = Form(str(DEFAULT_THREADS)),
    allow_empty: str = Form(""),
    max_remove_pct: str = Form(_number(DEFAULT_MAX_REMOVE_PCT)),
    skip_invalid: str = Form(""),
    attribute_mode: str = Form("array"),
    attribute: str = Form(""),
    schedule: str = Form(""),
    timezone: str = Form("UTC"),
    alert_webhook: str = Form(""),
    alert_format: str = Form("json"),
    alert_on_failure: str = Form(""),
    alert_size_change_pct: str = Form(""),
    alert_removals: str = Form(""),
    alert_duration_s: str = Form(""),
    alert_refused_pct: str = Form(""),
    alert_hold: str = Form(""),
    result_columns: list[str] = Form([]),
) -> Editor:
    """The editor's form as posted by *Run*, *Dry run* and *Save* (htmx sends the whole form)."""
    values = {
        "sql": sql,
        "name": name.strip(),
        "auth": auth.strip(),
        "cohort_id": cohort_id.strip(),
        "cohort_name": cohort_name.strip(),
        "operation": operation.strip(),
        "alias_column": alias_column.strip(),
        "threads": threads.strip(),
        "allow_empty": allow_empty,
        "max_remove_pct": max_remove_pct.strip(),
        "skip_invalid": skip_invalid,
        **attribute_values({"attribute_mode": attribute_mode, "attribute": attribute}),
        "schedule": schedule.strip(),
        "timezone": timezone.strip() or "UTC",
        **alert_values(
            {
                "alert_webhook": alert_webhook,
                "alert_format": alert_format,
                "alert_on_failure": alert_on_failure,
                "alert_size_change_pct": alert_size_change_pct,
                "alert_removals": alert_removals,
                "alert_duration_s": alert_duration_s,
                "alert_refused_pct": alert_refused_pct,
                "alert_hold": alert_hold,
            }
        ),
    }
    return Editor(values, [column for column in result_columns if column])


def blank_values() -> dict[str, str]:
    return {
        "sql": "",
        "name": "",
        "auth": "",
        "cohort_id": "",
        "cohort_name": "",
        "operation": "add",
        "alias_column": "",
        "threads": str(DEFAULT_THREADS),
        "allow_empty": "",
        "max_remove_pct": _number(DEFAULT_MAX_REMOVE_PCT),
        "skip_invalid": "",
        "attribute_mode": "array",
        "attribute": "",
        "schedule": "",
        "timezone": "UTC",
        **blank_alert_values(),
    }


def saved_values(query: queries.SavedQuery) -> dict[str, str]:
    """A saved query as the editor's fields."""
    values = blank_values()
    values.update(
        sql=query.sql,
        name=query.name,
        schedule=query.schedule or "",
        timezone=query.timezone,
        **saved_alert_values(query.alerts),
    )
    export = query.export
    if export is not None:
        values.update(
            auth=export.auth,
            cohort_id=export.cohort_id,
            cohort_name=export.cohort_name or "",
            operation=export.operation,
            alias_column=export.alias_column or "",
            threads=str(export.threads),
            allow_empty="on" if export.mirror.allow_empty else "",
            max_remove_pct=_number(export.mirror.max_remove_pct),
            skip_invalid="on" if export.skip_invalid else "",
            attribute_mode=export.attribute_mode,
            attribute=export.attribute or "",
        )
    return values


# --- the list -------------------------------------------------------------------------


@router.get("/queries")
def list_page(
    request: Request,
    console: Console = Depends(console_of),
    deleted: str = "",
    name: str = "",
    offset: str = "0",
) -> Response:
    page = queries.page_of_queries(
        offset=int(offset) if offset.isdigit() else 0,
        limit=LIST_PAGE,
        name_contains=name,
        settings=console.settings,
    )
    # One read of the history for the whole page, however many queries are saved.
    last = latest_run_views(console.settings, [query.job for query in page.queries])
    rows = [{"query": query, "last": last.get(query.job)} for query in page.queries]
    return console.pages.render(
        request,
        "console/workbench_list.html",
        {"rows": rows, "page": page, "name": name.strip(), "deleted": deleted},
    )


# --- the editor -----------------------------------------------------------------------


@router.get("/queries/new")
def new_query(request: Request, console: Console = Depends(console_of)) -> Response:
    return _editor_page(request, console, Editor(blank_values()))


@router.get("/queries/{name}")
def query_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    query = _saved_query(console, name)
    return _editor_page(request, console, Editor(saved_values(query)), saved=query, outcome=saved)


@router.post("/queries/preview")
def run_preview(
    request: Request, console: Console = Depends(console_of), editor: Editor = Depends(editor_form)
) -> Response:
    """*Run*: the first rows and the row count, streamed and bounded (an htmx fragment)."""
    result: Preview | None = None
    failure: CohortsyncError | None = None
    if not editor.sql.strip():
        failure = CohortsyncError("there is no SQL to run", hint="type a query in SQL first")
    else:
        try:
            with open_engine(console.settings.warehouse_url) as engine:
                result = preview(engine, editor.sql, limit=SHOWN_ROWS)
        except CohortsyncError as error:
            failure = error
    columns = [name for name, _ in result.columns] if result is not None else editor.columns
    return console.pages.render(
        request,
        "console/_workbench_result.html",
        {
            "result": result,
            "failure": failure,
            **_alias_context(editor.values, columns, oob=True),
        },
    )


@router.post("/queries/dry-run")
def dry_run(
    request: Request, console: Console = Depends(console_of), editor: Editor = Depends(editor_form)
) -> Response:
    """*Dry run*: the exact plan of the export as typed, nothing sent (the export section)."""
    errors: dict[str, str] = {}
    plan: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    failure: CohortsyncError | None = None
    data = editor.export_data(is_rest_attribute(editor.values["auth"], list_auths(console.catalog)))
    if data is None:
        errors["auth"] = "Choose the authentication to plan the export with"
    elif not editor.sql.strip():
        failure = CohortsyncError("there is no SQL to plan", hint="type a query in SQL first")
    else:
        try:
            export = QueryExport.model_validate(data)
        except ValidationError as error:
            errors = _form_problems(field_problems(error))
        else:
            try:
                done = queries.plan_export(
                    editor.sql,
                    export,
                    name=editor.values["name"] or None,
                    settings=console.settings,
                )
            except CohortsyncError as error:
                failure = error
            else:
                report = done.to_dict()
                plan = report.get("plan")
    # 200 even when refused: htmx swaps only successful responses into the page.
    return console.pages.render(
        request,
        "console/_workbench_export.html",
        {
            **_export_context(request, console, editor, errors),
            "plan": plan,
            "report": report,
            "plan_failure": failure,
            "sample_body": _sample_body(plan),
        },
    )


@router.post("/queries/schedule-preview")
def schedule_preview(
    request: Request,
    console: Console = Depends(console_of),
    schedule: str = Form(""),
    timezone: str = Form("UTC"),
) -> Response:
    """The next runs of the schedule being typed, in its time zone (an htmx fragment)."""
    return console.pages.render(
        request, "console/_workbench_schedule.html", _schedule_context(schedule, timezone)
    )


@router.post("/queries/attribute-fields")
def attribute_fields(
    request: Request, console: Console = Depends(console_of), editor: Editor = Depends(editor_form)
) -> Response:
    """The attribute fields for the authentication chosen (an htmx fragment)."""
    shown = is_rest_attribute(editor.values["auth"], list_auths(console.catalog))
    return console.pages.render(
        request,
        "console/_attribute_fields.html",
        {
            "values": editor.values,
            "errors": {},
            **attribute_context(
                editor.values, shown, prefixed(request, "/queries/attribute-fields")
            ),
        },
    )


@router.post("/queries/save")
def save(
    request: Request, console: Console = Depends(console_of), editor: Editor = Depends(editor_form)
) -> Response:
    """*Save*: the same as ``cohortsync query save``; a refusal saves nothing and says why."""
    values = editor.values
    errors = editor.export_without_auth()
    data = {
        "name": values["name"],
        "sql": values["sql"],
        "export": editor.export_data(
            is_rest_attribute(values["auth"], list_auths(console.catalog))
        ),
        "schedule": values["schedule"] or None,
        "timezone": values["timezone"],
        "alerts": alert_data(values),
    }
    try:
        query = Query.model_validate(data)
    except ValidationError as error:
        alert_errors, other = alert_problems(field_problems(error))
        errors = {**_form_problems(other), **alert_errors, **errors}
    if not values["sql"].strip():
        errors["sql"] = "Type the query's SQL"
    if errors:
        return _editor_page(request, console, editor, errors=errors, status=422)
    try:
        queries.check_saved_sql(query.name, query.sql, console.settings.warehouse_url)
    except CohortsyncError as error:
        return _editor_page(request, console, editor, errors={"sql": said(error)}, status=422)
    try:
        outcome = queries.save_query(
            query.name,
            query.sql,
            export=query.export,
            schedule=query.schedule,
            timezone=query.timezone,
            alerts=query.alerts,
            settings=console.settings,
        )
    except CohortsyncError as error:
        return _editor_page(request, console, editor, failure=error, status=422)
    return redirect(request, f"/queries/{query.name}?saved={outcome}")


@router.post("/queries/{name}/run")
def run_now(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    """*Run now*: the saved query runs in a launch; the browser follows it on its run page."""
    _saved_query(console, name)  # an unknown name is refused here

    def work(reporter: Any, stop: Any) -> queries.QueryRunResult:
        return queries.run_query(name, reporter=reporter, stop=stop, settings=console.settings)

    launch = console.launches.start(f"query:{name}", work)
    return launched(request, launch)


@router.get("/queries/{name}/delete")
def confirm_delete(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    query = _saved_query(console, name)
    return console.pages.render(request, "console/workbench_delete.html", {"query": query})


@router.post("/queries/{name}/delete")
def delete(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    queries.delete_query(name, settings=console.settings)
    return redirect(request, f"/queries?deleted={name}")


# --- rendering --------------------------------------------------------------------------


def _saved_query(console: Console, name: str) -> queries.SavedQuery:
    """The saved query ``name``; an unknown one is the console's "not found" page."""
    try:
        return queries.get_query(name, settings=console.settings)
    except ConfigError as error:
        if error.message.startswith("no saved query"):
            raise ConfigError(f"unknown query {name!r}", hint=error.hint) from None
        raise


def _editor_page(
    request: Request,
    console: Console,
    editor: Editor,
    *,
    saved: queries.SavedQuery | None = None,
    outcome: str = "",
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    errors = errors or {}
    values = editor.values
    last = list_run_views(console.settings, job=saved.job, limit=1) if saved else []
    return console.pages.render(
        request,
        "console/workbench_editor.html",
        {
            "values": values,
            "errors": errors,
            "failure": failure,
            "saved": saved,
            "outcome": outcome,
            "last_run": last[0] if last else None,
            "zones": _zones(values["timezone"]),
            "alert_format_options": FORMAT_OPTIONS,
            **_export_context(request, console, editor, errors),
            **_schedule_context(values["schedule"], values["timezone"], errors),
        },
        status_code=status,
    )


def _export_context(
    request: Request, console: Console, editor: Editor, errors: Mapping[str, str]
) -> dict[str, Any]:
    auths = list_auths(console.catalog)
    values = editor.values
    rest_attribute = is_rest_attribute(values["auth"], auths)
    auth_options = [("", "No export: only run the query")]
    auth_options += [(auth.name, f"{auth.name} ({auth.endpoint})") for auth in auths]
    if values["auth"] and values["auth"] not in {auth.name for auth in auths}:
        auth_options.append((values["auth"], f"{values['auth']} (not saved any more)"))
    return {
        "values": values,
        "errors": errors,
        "auth_options": auth_options,
        "has_auths": bool(auths),
        "operation_options": list(OPERATION_TEXT.items()),
        "plan": None,
        "report": None,
        "plan_failure": None,
        "sample_body": "",
        **_alias_context(values, editor.columns),
        **attribute_context(values, rest_attribute, prefixed(request, "/queries/attribute-fields")),
    }


def _alias_context(
    values: Mapping[str, str], columns: list[str], *, oob: bool = False
) -> dict[str, Any]:
    """The *Alias* select: none, or one of the result's columns (known once *Run* ran)."""
    chosen = values.get("alias_column", "")
    names = list(columns)
    if chosen and chosen not in names:
        names.append(chosen)
    return {
        "alias_options": [("", "none")] + [(name, name) for name in names],
        "alias_value": chosen,
        "result_columns": columns,
        "alias_oob": oob,
    }


def _schedule_context(
    schedule: str, timezone: str, errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The schedule's next runs in its time zone, or why it is refused."""
    problem = (errors or {}).get("schedule") or (errors or {}).get("timezone")
    upcoming: list[dt.datetime] = []
    schedule = schedule.strip()
    timezone = timezone.strip() or "UTC"
    if schedule and not problem:
        try:
            upcoming = upcoming_slots(check_cron(schedule, timezone), timezone, UPCOMING_RUNS)
        except CohortsyncError as error:
            problem = said(error)
    return {
        "schedule_text": schedule,
        "schedule_zone": timezone,
        "schedule_problem": problem,
        "upcoming": upcoming,
    }


def _form_problems(problems: Mapping[str, str]) -> dict[str, str]:
    """Field problems keyed by the form's field names (the last part of their path)."""
    errors: dict[str, str] = {}
    for path, message in problems.items():
        name = path.rsplit(".", 1)[-1]
        if path == "export":
            name = "auth"
        errors.setdefault(name, message)
    return errors


def _zones(current: str) -> list[str]:
    zones = [name for name in time_zones() if name != "UTC"]
    chosen = [current] if current and current != "UTC" and current not in zones else []
    return ["UTC", *chosen, *zones]


def _sample_body(plan: Mapping[str, Any] | None) -> str:
    """The dry run's first request body as people read it (its keys are masked already)."""
    if not plan or plan.get("first_request") is None:
        return ""
    return json.dumps(plan["first_request"], indent=2, ensure_ascii=False)
