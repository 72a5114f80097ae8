"""Parent segments: create one on a warehouse table and its key, see its columns, delete it.

A parent is saved through the same library call as ``cohortsync audience
parent create``, so the table and its key are checked against the warehouse
there; a missing table is refused under the table's field with the tables
the warehouse has, a key that is not a column under the key's field. As the
table is typed, its columns and the key's choices are shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cohortsync.audience import parents, segments
from cohortsync.audience.compile import RuleError
from cohortsync.audience.parents import ColumnInfo
from cohortsync.catalog.audiences import SavedParent
from cohortsync.console.context import Console, console_of
from cohortsync.console.field_errors import said
from cohortsync.console.routes.audience.deletion import Deletable, add_delete_routes
from cohortsync.definitions import Parent, field_problems
from cohortsync.errors import CohortsyncError, SourceError
from cohortsync.web.pages import redirect

router = APIRouter()

# The fixed paths come before /audience/parents/{name}, which would match them otherwise.


@router.get("/audience/parents/new")
def new_parent_form(request: Request, console: Console = Depends(console_of)) -> Response:
    return _parent_form(request, console, {})


@router.get("/audience/parents/columns")
def table_columns_fragment(
    request: Request, console: Console = Depends(console_of), table: str = "", key: str = ""
) -> Response:
    """The chosen table's columns and the key column select, as the table is typed."""
    return console.pages.render(
        request, "console/_audience_columns.html", _columns_context(console, table.strip(), key)
    )


@router.post("/audience/parents/new")
def create_parent(
    request: Request,
    console: Console = Depends(console_of),
    name: str = Form(""),
    table: str = Form(""),
    key: str = Form(""),
    description: str = Form(""),
) -> Response:
    values = {
        "name": name.strip(),
        "table": table.strip(),
        "key": key.strip(),
        "description": description.strip() or None,
    }
    try:
        parent = Parent.model_validate(values)
    except ValidationError as error:
        return _parent_form(request, console, values, errors=field_problems(error), status=422)
    try:
        parents.create_parent(
            parent.name,
            parent.table,
            parent.key,
            description=parent.description,
            settings=console.settings,
        )
    except SourceError as error:
        return _parent_form(request, console, values, errors={"table": said(error)}, status=422)
    except RuleError as error:
        return _parent_form(request, console, values, errors={"key": said(error)}, status=422)
    except CohortsyncError as error:
        return _parent_form(request, console, values, failure=error, status=422)
    return redirect(request, f"/audience/parents/{values['name']}?saved=1")


@router.get("/audience/parents/{name}")
def parent_page(
    request: Request, name: str, console: Console = Depends(console_of), saved: str = ""
) -> Response:
    parent = parents.get_parent(name, settings=console.settings)
    columns, failure = columns_of(parent, console)
    return console.pages.render(
        request,
        "console/audience_parent.html",
        {
            "parent": parent,
            "columns": columns,
            "failure": failure,
            "segments": segments.list_segments(parent=name, settings=console.settings),
            "saved": saved,
        },
    )


add_delete_routes(
    router,
    Deletable(
        "parent",
        get=parents.get_parent,
        delete=parents.delete_parent,
        explanation="Its table stays in the warehouse. A parent that segments still use cannot "
        "be deleted: delete those segments first.",
    ),
)


def columns_of(
    parent: SavedParent, console: Console
) -> tuple[list[ColumnInfo], CohortsyncError | None]:
    """A parent's columns, or none and why, for a page that shows them beside other things."""
    try:
        return parents.parent_columns(parent, console.settings), None
    except CohortsyncError as error:
        return [], error


def _parent_form(
    request: Request,
    console: Console,
    values: Mapping[str, Any],
    *,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    try:
        tables = parents.warehouse_tables(settings=console.settings)
    except CohortsyncError:
        tables = []
    context = {
        "values": values,
        "errors": errors or {},
        "failure": failure,
        "tables": tables,
        **_columns_context(console, values.get("table") or "", values.get("key") or ""),
    }
    return console.pages.render(
        request, "console/audience_parent_new.html", context, status_code=status
    )


def _columns_context(console: Console, table: str, key: str) -> dict[str, Any]:
    columns: list[ColumnInfo] = []
    table_error = None
    if table:
        try:
            columns = parents.table_columns(table, settings=console.settings)
        except CohortsyncError as error:
            table_error = error
    known: list[str] = []
    if table_error is not None:
        with suppress(CohortsyncError):
            known = parents.warehouse_tables(settings=console.settings)
    return {
        "table": table,
        "columns": columns,
        "table_error": table_error,
        "known_tables": known,
        "key": key,
    }
