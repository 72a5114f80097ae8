"""Sessions in a signed cookie: who is logged in, and the session's CSRF token.

Nothing is kept on the server: the cookie holds the user name, a random CSRF
token and the time it was issued, signed with the side's secret
(itsdangerous). Changing that secret logs every session out. The cookie is
HttpOnly (no script reads it) and SameSite=Lax (a form posted from another
site does not carry it), and ``Secure`` when the pages are served over HTTPS.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

DEFAULT_MAX_AGE = 12 * 3600  # seconds a session lasts without logging in again


@dataclass(frozen=True)
class Session:
    """A logged-in user and the token every form of the session carries."""

    user: str
    csrf_token: str

    @classmethod
    def start(cls, user: str) -> Session:
        return cls(user=user, csrf_token=secrets.token_urlsafe(24))


class SessionCookie:
    """Writes and reads the signed session cookie of one side.

    Args:
        secret: the signing secret, or a function that reads it (so a new
            secret, drawn when a password changes, ends the other sessions at
            once); keep it stable across restarts, or every restart logs
            everyone out.
        cookie_name: one per side, so the console and the dashboard served on
            one host keep separate sessions.
        max_age: seconds a session stays valid.
    """

    def __init__(
        self,
        secret: str | Callable[[], str],
        *,
        cookie_name: str,
        max_age: int = DEFAULT_MAX_AGE,
    ) -> None:
        self._secret = secret
        self.cookie_name = cookie_name
        self.max_age = max_age

    def _serializer(self) -> URLSafeTimedSerializer:
        secret = self._secret() if callable(self._secret) else self._secret
        return URLSafeTimedSerializer(secret, salt=f"{self.cookie_name}.session")

    def read(self, request: Request) -> Session | None:
        """The session the request's cookie carries, or None (absent, forged or expired)."""
        raw = request.cookies.get(self.cookie_name)
        if not raw:
            return None
        try:
            data = self._serializer().loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user, token = data.get("u"), data.get("c")
        if not isinstance(user, str) or not isinstance(token, str):
            return None
        return Session(user=user, csrf_token=token)

    def write(self, response: Response, session: Session, *, secure: bool) -> None:
        """Set the cookie for ``session`` on ``response``."""
        response.set_cookie(
            self.cookie_name,
            self._serializer().dumps({"u": session.user, "c": session.csrf_token}),
            max_age=self.max_age,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )

    def clear(self, response: Response) -> None:
        """Remove the cookie: the browser forgets the session."""
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="lax")
