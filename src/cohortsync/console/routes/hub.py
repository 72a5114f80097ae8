"""Integrations Hub > Catalog: the Braze cohort integration and its authentications.

*Create Authentication* builds the same :class:`~cohortsync.definitions.Authentication`
as ``cohortsync auth create`` and saves it through the same
:func:`~cohortsync.export.credentials.create_checked_auth`: the key is
checked against the endpoint first, and a refusal shows the server's message.
The key is never sent back to the browser: the form's password field starts
empty, and lists show it masked.

*Replace key* (``/hub/braze/auths/NAME/key``) is ``cohortsync auth update``:
the new key is checked against the endpoint, and only then replaces the
saved one, so a key rotates without a gap; a refused key changes nothing.

The form's *Destination type* (``partner-cohort`` or ``rest-attribute``)
decides what the key is: choosing another type swaps the key's field (its
label and hint) and the partner field through htmx
(``/hub/braze/new/key-fields``); without scripts, the page sent back after a
refusal shows the fields of the type chosen.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cohortsync.catalog.auths import AuthRecord, delete_auth, get_auth, list_auths
from cohortsync.console.context import Console, console_of
from cohortsync.definitions import Authentication, field_problems
from cohortsync.definitions.fields import DEFAULT_PARTNER
from cohortsync.errors import CohortsyncError
from cohortsync.export.credentials import create_checked_auth, update_checked_auth
from cohortsync.web.pages import redirect

router = APIRouter()

AUTH_TYPES = (
    ("partner-cohort", "Braze Cohorts (partner)"),
    ("rest-attribute", "Braze REST (custom attribute)"),
)

INTEGRATION = {
    "name": "Braze Cohorts",
    "summary": "Send query results and segments to Braze: as cohorts through the partner "
    "cohort import API, or as a custom attribute through the REST API's /users/track.",
}


@router.get("/hub")
def catalog_page(request: Request, console: Console = Depends(console_of)) -> Response:
    auths = list_auths(console.catalog)
    return console.pages.render(
        request, "console/hub.html", {"integration": INTEGRATION, "auth_count": len(auths)}
    )


@router.get("/hub/braze")
def integration_page(
    request: Request,
    console: Console = Depends(console_of),
    saved: str = "",
    deleted: str = "",
    updated: str = "",
) -> Response:
    return console.pages.render(
        request,
        "console/integration.html",
        {
            "integration": INTEGRATION,
            "auths": list_auths(console.catalog),
            "saved": saved,
            "deleted": deleted,
            "updated": updated,
        },
    )


@router.get("/hub/braze/new")
def new_auth_form(request: Request, console: Console = Depends(console_of)) -> Response:
    return _auth_form(request, console, {"partner": DEFAULT_PARTNER, "type": "partner-cohort"})


@router.get("/hub/braze/new/key-fields")
def key_fields(
    request: Request, console: Console = Depends(console_of), type: str = "partner-cohort"
) -> Response:
    """The key's field (and the partner's) of the destination type chosen."""
    return console.pages.render(
        request,
        "console/auth_key_fields.html",
        {"values": {"partner": DEFAULT_PARTNER, "type": type}, "errors": {}},
    )


@router.post("/hub/braze/new")
def create_auth(
    request: Request,
    console: Console = Depends(console_of),
    name: str = Form(""),
    endpoint: str = Form(""),
    data_import_key: str = Form(""),
    partner: str = Form(DEFAULT_PARTNER),
    type: str = Form("partner-cohort"),
) -> Response:
    values = {
        "name": name.strip(),
        "endpoint": endpoint.strip(),
        "partner": partner.strip() or DEFAULT_PARTNER,
        "type": type,
    }
    try:
        auth = Authentication.model_validate({**values, "data_import_key": data_import_key.strip()})
    except ValidationError as error:
        return _auth_form(request, console, values, errors=field_problems(error), status=422)
    try:
        create_checked_auth(auth, console.settings)
    except CohortsyncError as error:
        return _auth_form(request, console, values, failure=error, status=422)
    return redirect(request, f"/hub/braze?saved={auth.name}")


@router.get("/hub/braze/auths/{name}/key")
def replace_key_form(
    request: Request, name: str, console: Console = Depends(console_of)
) -> Response:
    record = get_auth(console.catalog, name)
    return _key_form(request, console, record, {"endpoint": record.endpoint})


@router.post("/hub/braze/auths/{name}/key")
def replace_key(
    request: Request,
    name: str,
    console: Console = Depends(console_of),
    endpoint: str = Form(""),
    data_import_key: str = Form(""),
) -> Response:
    """Check the new key (and endpoint) like ``auth update``, then replace the saved ones."""
    record = get_auth(console.catalog, name)
    values = {"endpoint": endpoint.strip() or record.endpoint}
    key = data_import_key.strip()
    if not key:
        errors = {"data_import_key": f"give the new {record.key_label}"}
        return _key_form(request, console, record, values, errors=errors, status=422)
    try:
        update_checked_auth(name, console.settings, endpoint=values["endpoint"], key=key)
    except CohortsyncError as error:
        return _key_form(request, console, record, values, failure=error, status=422)
    return redirect(request, f"/hub/braze?updated={name}")


@router.get("/hub/braze/auths/{name}/delete")
def confirm_delete(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    return console.pages.render(
        request, "console/auth_delete.html", {"auth": get_auth(console.catalog, name)}
    )


@router.post("/hub/braze/auths/{name}/delete")
def delete(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
    delete_auth(console.catalog, name)
    return redirect(request, f"/hub/braze?deleted={name}")


def _key_form(
    request: Request,
    console: Console,
    record: AuthRecord,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    return console.pages.render(
        request,
        "console/auth_key.html",
        {"auth": record, "values": values, "errors": errors or {}, "failure": failure},
        status_code=status,
    )


def _auth_form(
    request: Request,
    console: Console,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    return console.pages.render(
        request,
        "console/auth_new.html",
        {"values": values, "errors": errors or {}, "failure": failure, "types": AUTH_TYPES},
        status_code=status,
    )
