"""How an error a user can act on reads under the form field it concerns.

A refused table, key, rule, SQL or schedule shows next to its field rather
than at the top of the form; every screen of the console words it the same way.
"""

from __future__ import annotations

from cohortsync.errors import CohortsyncError


def said(error: CohortsyncError) -> str:
    """An error as one line under a field: the message and what to do."""
    text = error.message + (f" ({error.hint})" if error.hint else "")
    return text[:1].upper() + text[1:]
