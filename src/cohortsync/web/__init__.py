"""The web layer both sides share: sessions, CSRF, login throttling, pages and serving.

The console of the exporting side (:mod:`cohortsync.console`) and the
dashboard of the receiving service mount their routes on it, so that there is
one way of doing web pages in the project:

* :mod:`.passwords`: argon2 hashes;
* :mod:`.sessions`: a signed, HttpOnly, SameSite=Lax cookie holding the user
  and the session's CSRF token;
* :mod:`.throttle`: failed logins slow down the next attempts;
* :mod:`.guard`: the dependencies that require a session and a CSRF token,
  and the login, one-time link and logout routes;
* :mod:`.pages`: Jinja2 templates, with the shared layout and form macros;
* :mod:`.serving`: binding the socket and running uvicorn, in the foreground
  or in a thread.

Static assets (htmx, the stylesheet) ship in the package under ``static/``:
no CDN and no build step, because the pages must work offline.

This package imports nothing of either side: each side passes in its own
account store (:class:`.guard.AccountStore`).
"""
