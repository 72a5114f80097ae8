"""What one export is: the contract between the CLI, saved jobs and the run.

``cohortsync export``, a saved query, an activation and the scheduler all
build an :class:`ExportSpec` and hand it to :func:`cohortsync.export.run.run_export`,
so every path gets the same checks, report and run history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The saved definitions declare these once; the export reads the same names.
from cohortsync.definitions.activation import DEVICE_IDS, USER_IDS
from cohortsync.definitions.fields import (
    DEFAULT_ARRAY_ATTRIBUTE,
    DEFAULT_MAX_REMOVE_PCT,
    DEFAULT_PARTNER,
    DEFAULT_THREADS,
    Operation,
    ThreadCount,
    attribute_name,
)

__all__ = [
    "DEFAULT_ARRAY_ATTRIBUTE",
    "DEFAULT_PARTNER",
    "DEFAULT_THREADS",
    "DEVICE_IDS",
    "MAX_ATTRIBUTE_OBJECTS",
    "MAX_IDENTIFIERS_PER_REQUEST",
    "PARTNER_COHORT",
    "REST_ATTRIBUTE",
    "USER_IDS",
    "AttributeMode",
    "Destination",
    "DestinationType",
    "ExportSpec",
    "MirrorOptions",
    "Operation",
    "Source",
]

MAX_IDENTIFIERS_PER_REQUEST = 1000
# Braze's /users/track takes at most 75 attribute objects per request.
MAX_ATTRIBUTE_OBJECTS = 75

DestinationType = Literal["partner-cohort", "rest-attribute"]
PARTNER_COHORT: DestinationType = "partner-cohort"
REST_ATTRIBUTE: DestinationType = "rest-attribute"
AttributeMode = Literal["array", "boolean"]


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
    """Where an export delivers: a workspace endpoint, its secret and the delivery type.

    ``type`` says how membership reaches Braze:

    - ``partner-cohort``: the partner cohort import API. ``data_import_key``
      is the workspace's data import key, ``partner_api_key`` the vendor's
      key for the endpoint's region, ``partner`` the partner name of the paths.
    - ``rest-attribute``: a custom attribute set through ``POST /users/track``
      (:mod:`cohortsync.export.rest_attribute`). ``data_import_key`` holds the
      workspace's REST API key (one secret field, so the cohort's identity, the
      run history's key fingerprint and every redaction treat both alike);
      ``partner_api_key`` is empty. ``attribute_mode`` and ``attribute`` say
      which attribute carries the cohort.

    ``auth_name`` names the saved authentication it came from, if any.
    """

    endpoint: str
    data_import_key: str = field(repr=False)
    partner_api_key: str = field(repr=False)
    partner: str = DEFAULT_PARTNER
    auth_name: str | None = None
    type: DestinationType = PARTNER_COHORT
    attribute_mode: AttributeMode = "array"
    attribute: str | None = None

    @property
    def rest_api_key(self) -> str:
        """The REST API key of a ``rest-attribute`` destination."""
        return self.data_import_key

    def attribute_name(self, cohort_id: str) -> str:
        """The custom attribute a ``rest-attribute`` export of ``cohort_id`` changes.

        ``cohorts`` (array mode) or ``cohort_<cohort id>`` (boolean mode) unless named.
        """
        return attribute_name(self.attribute_mode, self.attribute, cohort_id)

    def cohort_slot(self, cohort_id: str) -> str:
        """What tells this destination's cohorts apart within one workspace and key.

        The partner name for the partner path. For the attribute path, the
        mode and the attribute: members delivered as ``cohorts`` are not
        members of a partner cohort, nor of another attribute, so each has its
        own lock, snapshots and run history (:class:`cohortsync.identity.CohortKey`).
        """
        if self.type == PARTNER_COHORT:
            return self.partner
        return f"{REST_ATTRIBUTE}:{self.attribute_mode}:{self.attribute_name(cohort_id)}"


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
    threads: ThreadCount = DEFAULT_THREADS  # "auto": adaptive (export.concurrency)
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
        destination = data["destination"]
        destination.pop("data_import_key")
        destination.pop("partner_api_key")
        if self.destination.type == PARTNER_COHORT:
            # runs recorded before attribute destinations have none of these keys
            for key in ("type", "attribute_mode", "attribute"):
                destination.pop(key)
        return data
