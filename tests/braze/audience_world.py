"""A workspace filled through the library, without HTTP: users, attributes, cohorts.

The segment filter and user lookup suites need many small, exact worlds on
both dialects. Users come from the bulk load and ``/users/track``'s
operation, cohorts from the partner import's own functions (resolve on a
snapshot, then write), so the data has the shape the service gives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cohortsync.braze import admin, matching
from cohortsync.braze.keys import PartnerCaller
from cohortsync.braze.profiles import rest_operations
from cohortsync.braze.sandbox import provision
from cohortsync.braze.store import Alias, Store, partners, user_queries
from cohortsync.braze.validation import CohortChange, CohortDefinition, MembershipChanges

from .support import unique


@dataclass
class World:
    """One provisioned workspace (partner "Treasure Data" enabled) of a store."""

    store: Store
    workspace: int
    caller: PartnerCaller

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        admin.load_users(self.store, workspace=self.workspace, rows=rows)

    def track(self, external_id: str, **attributes: Any) -> int:
        """Create or update an identified user with custom attributes; its braze id."""
        item = rest_operations.TrackedUser(external_id, None, False, attributes)
        assert rest_operations.track_users(self.store, self.workspace, [item]) == []
        return self.user_id(external_id)

    def track_alias(self, alias: Alias, **attributes: Any) -> None:
        item = rest_operations.TrackedUser(None, alias, False, attributes)
        assert rest_operations.track_users(self.store, self.workspace, [item]) == []

    def user_id(self, external_id: str) -> int:
        with self.store.read() as conn:
            row = user_queries.user_by_external_id(conn, self.workspace, external_id)
        assert row is not None, external_id
        return int(row.id)

    def cohort(
        self,
        cohort_id: str,
        name: str = "",
        *,
        user_ids: tuple[str, ...] = (),
        device_ids: tuple[str, ...] = (),
        aliases: tuple[Alias, ...] = (),
    ) -> None:
        """Define a cohort (named) and add members, as a partner's export does."""
        definition = CohortDefinition(cohort_id, name or cohort_id, "2021-01-21T19:20:30+05:00")
        matching.define_cohort(self.store, self.caller, definition)
        change = CohortChange(user_ids=user_ids, device_ids=device_ids, aliases=aliases)
        request = MembershipChanges(cohort_id=cohort_id, changes=(change,))
        with self.store.read() as conn:
            resolved = matching.resolve_request(self.store, conn, self.caller, request)
        matching.write_changes(self.store, self.caller, request, resolved)

    def segment(self, name: str, tree: dict[str, Any]) -> dict[str, Any]:
        return admin.create_segment(self.store, name, workspace=self.workspace, filter=tree)

    def members(self, segment: str) -> list[str]:
        """The segment's members as external ids, anonymous users as ``anon:<device ids>``."""
        listed = admin.segment_members(self.store, segment, workspace=self.workspace)
        return sorted(
            member["external_id"] or "anon:" + ",".join(member["device_ids"]) for member in listed
        )


def new_world(store: Store) -> World:
    """A fresh workspace of its own (PostgreSQL tests share one database)."""
    sandbox = provision(store, workspace_name=unique("ws"), partner_api_key=unique("pk"))
    with store.read() as conn:
        partner_id = conn.execute(
            sa.select(partners.c.id).where(partners.c.name == sandbox.partner)
        ).scalar_one()
    return World(store, sandbox.workspace, PartnerCaller(sandbox.workspace, partner_id))
