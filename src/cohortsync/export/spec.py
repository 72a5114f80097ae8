"""What one export is: the contract between the CLI, saved jobs and the run.

``cohortsync export``, a saved query, an activation and the scheduler all
build an :class:`ExportSpec` and hand it to :func:`cohortsync.export.run.run_export`,
so every path gets the same checks, report and run history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The saved definitions declare these once; the export reads the same names.
from cohortsync.definitions.activation import DEVICE_IDS, USER_IDS
from cohortsync.definitions.fields import (
    DEFAULT_MAX_REMOVE_PCT,
    DEFAULT_PARTNER,
    DEFAULT_THREADS,
    Operation,
)

__all__ = [
    "DEFAULT_PARTNER",
    "DEFAULT_THREADS",
    "DEVICE_IDS",
    "MAX_IDENTIFIERS_PER_REQUEST",
    "USER_IDS",
    "Destination",
    "ExportSpec",
    "MirrorOptions",
    "Operation",
    "Source",
]

MAX_IDENTIFIERS_PER_REQUEST = 1000


@dataclass(frozen=True)
class Source:
    """Where the rows come from: exactly one of ``sql`` or ``table``.

    ``params`` are bound to the placeholders (``?``) of ``sql``: segments are
    compiled to parameterised SQL, never to pasted values. ``warehouse_url`` is
    ``None`` for the configured warehouse (``COHORTSYNC_WAREHOUSE`` or the
    embedded DuckDB file).
    """

    sql: str | None = None
    table: str | None = None
    params: tuple[Any, ...] = ()
    warehouse_url: str | None = None

    def describe(self) -> str:
        return f"table {self.table}" if self.table else f"query {self.sql!r}"


@dataclass(frozen=True)
class Destination:
    """A workspace's partner endpoint and its data import key.

    ``auth_name`` names the saved authentication it came from, if any;
    ``partner_api_key`` is the vendor's key for the endpoint's region.
    """

    endpoint: str
    data_import_key: str = field(repr=False)
    partner_api_key: str = field(repr=False)
    partner: str = DEFAULT_PARTNER
    auth_name: str | None = None


@dataclass(frozen=True)
class MirrorOptions:
    """Guards and switches of ``--operation mirror``."""

    allow_empty: bool = False
    max_remove_pct: float = DEFAULT_MAX_REMOVE_PCT
    full_resync: bool = False


@dataclass(frozen=True)
class ExportSpec:
    """Everything one export run needs; JSON-serialisable for the run history."""

    source: Source
    destination: Destination
    cohort_id: str
    cohort_name: str | None = None
    operation: Operation = "add"
    alias_column: str | None = None
    threads: int = DEFAULT_THREADS
    mirror: MirrorOptions = field(default_factory=MirrorOptions)
    # Skip and count identifiers Braze would refuse instead of failing before sending.
    skip_invalid: bool = False
    job: str | None = None  # "query:NAME" or "activation:NAME" when run by a saved job

    @property
    def name(self) -> str:
        """The cohort name sent to Braze: the cohort id when none is given."""
        return self.cohort_name or self.cohort_id

    def to_public_dict(self) -> dict[str, Any]:
        """The spec without secrets, for run history and reports."""
        data = asdict(self)
        data["destination"].pop("data_import_key")
        data["destination"].pop("partner_api_key")
        return data
