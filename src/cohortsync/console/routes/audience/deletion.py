"""Deleting a parent, a segment or an activation: a page that asks, then the delete.

The three kinds are deleted the same way, so their routes are made here
once: ``GET /audience/<kind>s/<name>/delete`` says what deleting loses,
``POST`` to the same path deletes through the library and returns to
Audience Studio's home; a delete the library refuses (a parent still used
by segments, a segment still exported by activations) shows the page again
with the reason and only the way back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cohortsync.console.context import Console, console_of
from cohortsync.errors import CohortsyncError
from cohortsync.web.pages import redirect


@dataclass(frozen=True)
class Deletable:
    """A kind of saved thing as its delete page needs it."""

    kind: str  # "parent", "segment" or "activation": the page's words and the paths
    get: Callable[..., object]  # raises "unknown <kind>" (a 404 page) for a name not saved
    delete: Callable[..., object]
    explanation: str  # what deleting loses and what stays

    def page(self, name: str) -> str:
        return f"/audience/{self.kind}s/{name}"


def add_delete_routes(router: APIRouter, deletable: Deletable) -> None:
    """The confirm (GET) and delete (POST) routes of one kind, named as their pages always were."""
    path = f"/audience/{deletable.kind}s/{{name}}/delete"

    def confirm(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
        return confirm_delete(request, console, deletable, name)

    def delete(request: Request, name: str, console: Console = Depends(console_of)) -> Response:
        try:
            deletable.delete(name, settings=console.settings)
        except CohortsyncError as error:
            return confirm_delete(request, console, deletable, name, failure=error, status=409)
        return redirect(request, f"/audience?deleted={deletable.kind}+{name}")

    router.add_api_route(path, confirm, methods=["GET"], name=f"confirm_delete_{deletable.kind}")
    router.add_api_route(path, delete, methods=["POST"], name=f"delete_{deletable.kind}")


def confirm_delete(
    request: Request,
    console: Console,
    deletable: Deletable,
    name: str,
    *,
    failure: CohortsyncError | None = None,
    status: int = 200,
) -> Response:
    deletable.get(name, settings=console.settings)
    return console.pages.render(
        request,
        "console/audience_delete.html",
        {
            "kind": deletable.kind,
            "name": name,
            "explanation": deletable.explanation,
            "back": deletable.page(name),
            "failure": failure,
        },
        status_code=status,
    )
