"""Braze's identity endpoints on the store: alias/new, identify and delete of ``/users``.

Each call is one write transaction. The rules are Braze's documented ones
(docs/braze-service.md names the pages); where Braze's pages are silent the
choice is written there under "decisions":

* a user holds at most one alias per label, and an alias (label and name)
  belongs to one user of the workspace;
* ``alias/new`` adds an alias to the user with that external id, creates an
  alias-only user when the object has no external id, and changes nothing
  (still answering success) when the alias is taken, the user already has
  an alias of that label, or no user has that external id;
* ``identify`` gives an alias-only (or email-only) profile an external id,
  or combines it into the user that has the id and removes it, unless that
  user already has an alias of one of its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cohortsync.braze.store import Alias, Store, identity_queries, user_queries

PRIORITIZATIONS = ("identified", "unidentified", "most_recently_updated", "least_recently_updated")


@dataclass(frozen=True)
class EmailToIdentify:
    """One object of ``/users/identify`` ``emails_to_identify`` or, with ``kind``
    ``"phone"``, ``phone_numbers_to_identify`` (``email`` then holds the number)."""

    external_id: str
    email: str
    prioritization: tuple[str, ...]
    kind: str = "email"


@dataclass(frozen=True)
class UsersToDelete:
    """The users ``/users/delete`` names: by one kind of identifier only, as Braze requires."""

    external_ids: tuple[str, ...] = ()
    aliases: tuple[Alias, ...] = ()
    braze_ids: tuple[str, ...] = ()
    # (kind, value, prioritization): kind is "email" or "phone".
    contacts: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


def add_aliases(store: Store, workspace_id: int, items: Sequence[tuple[str | None, Alias]]) -> int:
    """``/users/alias/new``; the number of alias objects processed (all of them, as Braze)."""
    with store.write() as conn:
        for external_id, alias in items:
            if user_queries.user_by_alias(conn, workspace_id, alias) is not None:
                continue  # the pair is taken: Braze answers success and adds nothing
            if external_id is None:
                user_queries.create_user(conn, workspace_id, None, alias)
                continue
            user = user_queries.user_by_external_id(conn, workspace_id, external_id)
            if user is None:
                continue  # "the alias will not be added to any users"
            identity_queries.lock_users(conn, [user.id])
            if alias[0] not in identity_queries.alias_labels(conn, user.id):
                user_queries.add_alias(conn, workspace_id, alias, user.id)
    return len(items)


def identify_users(
    store: Store,
    workspace_id: int,
    aliases: Sequence[tuple[str, Alias]],
    emails: Sequence[EmailToIdentify] = (),
    *,
    merge: bool = True,
) -> list[str]:
    """``/users/identify``: the objects that identified nobody, each with why (``errors``).

    ``merge`` is ``merge_behavior`` ``"merge"``: the combined profile also
    takes the cohort memberships, events and purchases of the unidentified
    one, and the profile fields and custom attributes found only on it.
    Without it (``"none"``) only its aliases and device ids (Braze's push
    tokens) are kept; the rest is dropped with it.
    """
    errors = []
    with store.write() as conn:
        for index, (external_id, alias) in enumerate(aliases):
            source = user_queries.user_by_alias(conn, workspace_id, alias)
            reason = (
                "no user has this alias"
                if source is None
                else _identify(conn, workspace_id, source, external_id, merge)
            )
            if reason:
                errors.append(f"aliases_to_identify[{index}]: {reason}")
        seen = {"email": 0, "phone": 0}
        for item in emails:
            index = seen[item.kind]
            seen[item.kind] += 1
            source, reason = _email_profile(conn, workspace_id, item)
            if source is not None:
                reason = _identify(conn, workspace_id, source, item.external_id, merge)
            if reason:
                key = "emails_to_identify" if item.kind == "email" else "phone_numbers_to_identify"
                errors.append(f"{key}[{index}]: {reason}")
    return errors


def _identify(
    conn: sa.Connection, workspace_id: int, source: Any, external_id: str, merge: bool
) -> str | None:
    """Identify the user row ``source`` as ``external_id``; why not, or None when done."""
    if source.external_id is not None:
        if source.external_id == external_id:
            return None  # identified already: nothing to do
        return f"the profile is identified already (as {source.external_id!r})"
    target = user_queries.user_by_external_id(conn, workspace_id, external_id)
    if target is None:
        user_queries.set_external_id(conn, source.id, external_id)
        return None
    identity_queries.lock_users(conn, [source.id, target.id])
    shared = identity_queries.alias_labels(conn, source.id) & identity_queries.alias_labels(
        conn, target.id
    )
    if shared:
        return (
            f"the user {external_id!r} already has an alias labelled "
            f"{', '.join(repr(label) for label in sorted(shared))}: profiles not combined"
        )
    identity_queries.absorb_user(conn, workspace_id, source, target.id, merge_data=merge)
    return None


def _email_profile(
    conn: sa.Connection, workspace_id: int, item: EmailToIdentify
) -> tuple[Any, str | None]:
    """The one profile with the email that ``prioritization`` picks, or why there is none.

    The criteria narrow the candidates in order; more than one left means no
    merge, as Braze documents. The store keeps no update time, so the
    creation time stands for it in the ``*_recently_updated`` criteria.
    """
    target = user_queries.user_by_external_id(conn, workspace_id, item.external_id)
    candidates = [
        row
        for row in identity_queries.users_with(conn, workspace_id, item.kind, item.email)
        if target is None or row.id != target.id
    ]
    candidates = _prioritized(candidates, item.prioritization)
    if not candidates:
        return None, "no other profile has this email (after prioritization)"
    if len(candidates) > 1:
        return None, f"{len(candidates)} profiles have this email after prioritization: no merge"
    return candidates[0], None


def delete_users(store: Store, workspace_id: int, request: UsersToDelete) -> int:
    """``/users/delete``: remove the named users and all they hold; how many were deleted."""
    with store.write() as conn:
        ids = set(
            user_queries.ids_by_external_id(conn, workspace_id, request.external_ids).values()
        )
        ids.update(user_queries.owners_by_alias(conn, workspace_id, set(request.aliases)).values())
        numeric = [int(value) for value in request.braze_ids if _is_braze_id(value)]
        ids.update(identity_queries.user_ids_by_braze_id(conn, workspace_id, numeric))
        for kind, value, order in request.contacts:
            picked = _prioritized(
                identity_queries.users_with(conn, workspace_id, kind, value), order
            )
            if len(picked) == 1:
                ids.add(picked[0].id)
        return identity_queries.delete_users(conn, workspace_id, sorted(ids))


def _prioritized(candidates: list[Any], order: tuple[str, ...]) -> list[Any]:
    """The candidates ``prioritization`` leaves, narrowing in order (creation time stands
    for update time: the store keeps none); Braze acts only when exactly one is left."""
    for criterion in order:
        if criterion == "identified":
            candidates = [row for row in candidates if row.external_id is not None]
        elif criterion == "unidentified":
            candidates = [row for row in candidates if row.external_id is None]
        elif candidates:
            pick = max if criterion == "most_recently_updated" else min
            when = pick(row.created_at for row in candidates)
            candidates = [row for row in candidates if row.created_at == when]
    return candidates


def _is_braze_id(value: str) -> bool:
    """A braze id is a user's number; any other string names nobody."""
    return value.isascii() and value.isdigit() and len(value) <= 18
