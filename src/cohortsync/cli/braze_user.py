"""`cohortsync braze user`: who may log in to the dashboard, and which workspaces each sees."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cohortsync.braze.dashboard.accounts import (
    SECRET_REFRESH_SECONDS,
    create_user,
    describe_user,
    end_sessions,
    issue_login_link,
    list_users,
)
from cohortsync.braze.server import DEFAULT_PORT
from cohortsync.cli.braze_common import DbOption, print_json, store_of
from cohortsync.errors import ConfigError

user_app = typer.Typer(
    help=(
        "Dashboard users: each logs in with an email and a password, and sees only the "
        "workspaces they belong to. The dashboard is served by 'braze serve' at /dashboard."
    ),
    no_args_is_help=True,
)

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        help="The service's address as the user's browser reaches it, for the printed link.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON only, for scripts.")]


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ConfigError(
            "--password-stdin read no password", hint='pipe it in: echo "$PASSWORD" | ...'
        )
    return password


def _link(url: str, token: str) -> str:
    return f"{url.rstrip('/')}/dashboard/login/link?token={token}"


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option("--email", help="The user's email: their login.")],
    workspace: Annotated[
        list[str],
        typer.Option(
            "--workspace", "-w", help="A workspace (id or name) the user sees; repeat for more."
        ),
    ],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin instead of a link."),
    ] = False,
    url: UrlOption = DEFAULT_URL,
    json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """Create a dashboard user, or give an existing one more workspaces.

    Prints a one-time link that logs the user in and asks for a password; it
    works once, for 24 hours. With --password-stdin the password is set now
    and no link is printed.

    Examples:

    \b
      cohortsync braze user create --email ana@acme.io --workspace acme
      echo "$PASSWORD" | cohortsync braze user create --email ana@acme.io -w acme -w staging \\
          --password-stdin
    """
    password = _read_password() if password_stdin else None
    with store_of(db) as store:
        user = create_user(store, email, workspaces=workspace, password=password)
        document: dict[str, object] = user.as_json()
        if not user.has_password:
            document["login_link"] = _link(url, issue_login_link(store, user.email))
    if json:
        print_json(document)
        return
    names = ", ".join(user.workspaces)
    typer.echo(f"dashboard user {user.email}: workspaces {names}")
    if "login_link" in document:
        typer.echo(
            f"one-time link to set the password (works once, 24 h): {document['login_link']}"
        )
    else:
        typer.echo(f"log in at {url.rstrip('/')}/dashboard/login")


@user_app.command("link")
def user_link(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    url: UrlOption = DEFAULT_URL,
    json: JsonFlag = False,
    db: DbOption = None,
) -> None:
    """Print a new one-time login link for a user, e.g. one who forgot their password.

    The link logs in once within 24 hours and then asks for a new password.
    """
    with store_of(db) as store:
        user = describe_user(store, email.strip().lower())
        link = _link(url, issue_login_link(store, user.email))
    if json:
        print_json({**user.as_json(), "login_link": link})
    else:
        typer.echo(link)


@user_app.command("end-sessions")
def user_end_sessions(json: JsonFlag = False, db: DbOption = None) -> None:
    """Log every dashboard user out: each must log in again (password or a new link).

    For a password or a laptop that may have leaked: the sessions' signing
    secret is replaced, so every session cookie issued so far stops working,
    within a few seconds also in a running 'braze serve'. Passwords, users and
    keys are unchanged.
    """
    with store_of(db) as store:
        end_sessions(store)
    if json:
        print_json({"sessions_ended": True, "within_seconds": SECRET_REFRESH_SECONDS})
    else:
        typer.echo(
            "every dashboard session is ended; a running service drops them within "
            f"{SECRET_REFRESH_SECONDS:g} s"
        )


@user_app.command("list")
def user_list(json: JsonFlag = False, db: DbOption = None) -> None:
    """List the dashboard users, their workspaces, and whether each has set a password."""
    with store_of(db) as store:
        users = list_users(store)
    if json:
        print_json([user.as_json() for user in users])
        return
    if not users:
        typer.echo("no dashboard users; create one with 'cohortsync braze user create'")
    for user in users:
        state = "" if user.has_password else " (no password yet)"
        typer.echo(f"{user.email}{state}: {', '.join(user.workspaces)}")
