"""Who may see a page: login, one-time links, sessions, CSRF and logout, for both sides.

A side builds one :class:`Guard` from its account store and session cookie,
includes :meth:`Guard.routes` (``/login``, ``/login/link``, ``/logout``,
``/account/password``) and protects its own routers with
``dependencies=[Depends(guard.protect)]``. :meth:`Guard.protect` then

* sends a request without a valid session to the login page (an htmx
  request gets ``HX-Redirect``, so the whole page goes there, not a fragment);
* refuses a POST, PUT, PATCH or DELETE whose CSRF token, from the form field
  ``csrf_token`` or the ``X-CSRF-Token`` header htmx sends, is not the
  session's.

Failed logins go through :class:`~cohortsync.web.throttle.LoginThrottle`.
The login form itself carries no CSRF token, as there is no session yet: the
SameSite=Lax cookie and the password it needs are what protect it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Protocol
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cohortsync.web.pages import Pages, prefixed, redirect
from cohortsync.web.passwords import hash_password, password_problem, verify_password
from cohortsync.web.sessions import Session, SessionCookie
from cohortsync.web.throttle import LoginThrottle

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class AccountStore(Protocol):
    """Where a side keeps its accounts' password hashes."""

    def password_hash(self, user: str) -> str | None:
        """The stored hash of ``user``'s password; None for no such user or no password yet."""

    def account_exists(self, user: str) -> bool:
        """Whether ``user`` is an account of this side."""

    def set_password_hash(self, user: str, password_hash: str) -> None:
        """Store a new hash for ``user``'s password."""


class LoginLinks(Protocol):
    """Where a side keeps its one-time login links (in memory, or in its store)."""

    lost_link_advice: str
    """What to do when a link no longer works, in the words of the side."""

    def issue(self, user: str) -> str:
        """A new token that logs ``user`` in once."""

    def consume(self, token: str) -> str | None:
        """The user ``token`` logs in, once; None for an unknown, used or expired token."""


class LoginRequired(Exception):
    """The request has no valid session: the handler sends it to the login page."""


class CsrfRefused(Exception):
    """An unsafe request without the session's CSRF token."""


class OneTimeLinks:
    """Login links that work once, as the link a notebook server prints on start.

    Only a hash of each token is kept, in memory: a link dies with the
    process, after its first use, or after ``lifetime`` seconds.
    """

    lost_link_advice = (
        "A login link works once, and only while the process that printed it runs. "
        "Log in with your password, or restart the server for a new link."
    )

    def __init__(self, *, lifetime: float = 24 * 3600) -> None:
        self.lifetime = lifetime
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, user: str) -> str:
        """A new token that logs ``user`` in once."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token_digest(token)] = (user, time.monotonic() + self.lifetime)
        return token

    def consume(self, token: str) -> str | None:
        """The user ``token`` logs in, once; None for an unknown, used or expired token."""
        with self._lock:
            entry = self._tokens.pop(token_digest(token), None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]


def token_digest(token: str) -> str:
    """What is kept of a login link's token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this side only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Guard:
    """Sessions, CSRF and login for one side.

    Args:
        accounts: the side's accounts.
        cookie: the side's session cookie.
        pages: the side's pages, for the login and password forms.
        throttle: failed-login throttling; one per side.
        links: the one-time login links the side prints.
    """

    def __init__(
        self,
        accounts: AccountStore,
        cookie: SessionCookie,
        pages: Pages,
        *,
        throttle: LoginThrottle | None = None,
        links: LoginLinks | None = None,
    ) -> None:
        self.accounts = accounts
        self.cookie = cookie
        self.pages = pages
        self.throttle = throttle or LoginThrottle()
        self.links: LoginLinks = links or OneTimeLinks()

    # -- dependencies ---------------------------------------------------------------------

    async def protect(self, request: Request) -> Session:
        """The request's session, with its CSRF token checked on unsafe methods."""
        session = self.cookie.read(request)
        if session is None or not self.accounts.account_exists(session.user):
            raise LoginRequired()
        request.state.session = session
        if request.method in UNSAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER)
            if sent is None:
                form = await request.form()
                field = form.get(CSRF_FIELD)
                sent = field if isinstance(field, str) else None
            if not sent or not hmac.compare_digest(sent, session.csrf_token):
                raise CsrfRefused()
        return session

    def login_redirect(self, request: Request) -> Response:
        """Where :class:`LoginRequired` goes: the login page, back here after."""
        path = request.url.path.removeprefix(str(request.scope.get("root_path", "")))
        back = path + (f"?{request.url.query}" if request.url.query else "")
        target = prefixed(request, "/login") + (f"?next={quote(back)}" if path != "/" else "")
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    def csrf_refused(self, request: Request) -> Response:
        """Where :class:`CsrfRefused` goes: a page that says what to do."""
        return self.pages.render(
            request,
            "web/message.html",
            {
                "heading": "This form was refused",
                "message": "It did not carry this session's security token: it expired, or it "
                "was sent from another page or site. Nothing was saved.",
                "action": "Go back, reload the page and send the form again.",
            },
            status_code=403,
        )

    def start_session(self, request: Request, user: str, target: str) -> Response:
        response = redirect(request, safe_next(target))
        self.cookie.write(response, Session.start(user), secure=request.url.scheme == "https")
        return response

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> APIRouter:
        """The login, one-time link, logout and password routes."""
        router = APIRouter()
        pages = self.pages

        @router.get("/login", response_class=HTMLResponse)
        def login_form(request: Request, next: str = "/") -> Response:
            return pages.render(request, "web/login.html", {"next": safe_next(next)})

        @router.post("/login", response_class=HTMLResponse)
        def login(
            request: Request,
            user: str = Form(""),
            password: str = Form(""),
            next: str = Form("/"),
        ) -> Response:
            address = request.client.host if request.client else "unknown"
            wait = self.throttle.wait_seconds(user, address)
            context = {"next": safe_next(next), "user": user}
            if wait > 0:
                seconds = max(1, round(wait))
                return pages.render(
                    request,
                    "web/login.html",
                    {**context, "error": f"Too many failed logins. Try again in {seconds} s."},
                    status_code=429,
                    headers={"Retry-After": str(seconds)},
                )
            stored = self.accounts.password_hash(user)
            if stored is None or not verify_password(stored, password):
                self.throttle.failed(user, address)
                return pages.render(
                    request,
                    "web/login.html",
                    {**context, "error": f"Wrong {pages.user_label.lower()} or password."},
                    status_code=401,
                )
            self.throttle.succeeded(user, address)
            return self.start_session(request, user, next)

        @router.get("/login/link")
        def login_link(request: Request, token: str = "") -> Response:
            user = self.links.consume(token)
            if user is None or not self.accounts.account_exists(user):
                return pages.render(
                    request,
                    "web/message.html",
                    {
                        "heading": "This login link no longer works",
                        "message": self.links.lost_link_advice,
                        "action": "",
                        "link": ("/login", "Log in"),
                    },
                    status_code=401,
                )
            has_password = self.accounts.password_hash(user) is not None
            return self.start_session(request, user, "/" if has_password else "/account/password")

        @router.post("/logout", dependencies=[Depends(self.protect)])
        def logout(request: Request) -> Response:
            response = redirect(request, "/login")
            self.cookie.clear(response)
            return response

        @router.get("/account/password", response_class=HTMLResponse)
        def password_form(request: Request, session: Session = Depends(self.protect)) -> Response:
            return pages.render(request, "web/password.html", self._password_context(session))

        @router.post("/account/password", response_class=HTMLResponse)
        def set_password(
            request: Request,
            session: Session = Depends(self.protect),
            current: str = Form(""),
            password: str = Form(""),
            confirm: str = Form(""),
        ) -> Response:
            context = self._password_context(session)
            stored = self.accounts.password_hash(session.user)
            errors: dict[str, str] = {}
            if stored is not None and not verify_password(stored, current):
                errors["current"] = "This is not your current password."
            problem = password_problem(password)
            if problem:
                errors["password"] = problem[0].upper() + problem[1:] + "."
            elif password != confirm:
                errors["confirm"] = "The two passwords differ."
            if errors:
                return pages.render(
                    request, "web/password.html", {**context, "errors": errors}, status_code=422
                )
            self.accounts.set_password_hash(session.user, hash_password(password))
            # A new password may draw a new signing secret: this session gets a fresh cookie.
            fresh = Session.start(session.user)
            request.state.session = fresh
            context = {**self._password_context(fresh), "saved": True}
            response = pages.render(request, "web/password.html", context)
            self.cookie.write(response, fresh, secure=request.url.scheme == "https")
            return response

        return router

    def _password_context(self, session: Session) -> dict[str, object]:
        return {
            "has_password": self.accounts.password_hash(session.user) is not None,
            "errors": {},
            "saved": False,
        }
