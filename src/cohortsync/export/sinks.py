"""How a plan reaches one type of destination: the seam between the engine and the API.

Staging, planning, checkpoints, resume, mirror snapshots and guards are the
same for every destination; only the requests differ. A :class:`Sink` is
chosen once from the spec (:func:`sink_for`) and says, for its API:

- how many plan rows one request holds (``batch_size``: 1,000 identifiers
  for cohort import, 75 attribute objects for ``/users/track``), which fixes
  the plan's batch numbers;
- the request sent before the batches, if any (cohort import creates or
  renames the cohort first);
- the path a batch is posted to, and its body (``changes_body``);
- what a successful answer says beyond success (``read_answer``: the
  non-fatal errors of ``/users/track``);
- the first request as a dry run prints it, keys masked (``preview``);
- which identifier kinds it can address at all.

The HTTP client (:mod:`cohortsync.export.client`) adds the base URL and the
authentication of the destination's type, and retries and paces every sink's
requests alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import orjson
import pyarrow as pa

from cohortsync import secrets
from cohortsync.export.batches import Batch, BodyBuilder
from cohortsync.export.identifiers import KINDS
from cohortsync.export.rest_attribute import (
    ADDRESSABLE_KINDS,
    TRACK_PATH,
    TrackAnswer,
    TrackBodyBuilder,
    read_track_answer,
)
from cohortsync.export.spec import (
    MAX_ATTRIBUTE_OBJECTS,
    MAX_IDENTIFIERS_PER_REQUEST,
    REST_ATTRIBUTE,
    ExportSpec,
)


class Sink(Protocol):
    """The requests of one destination type (see the module docstring)."""

    batch_size: int
    batch_path: str
    addressable: frozenset[str]

    def opening(self) -> tuple[str, bytes, str] | None:
        """``(path, body, what)`` of the request sent before the batches, if any."""

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        """The body of one batch and its identifiers by kind."""

    def read_answer(self, batch: Batch, answer: bytes) -> TrackAnswer | None:
        """What the 2xx answer to ``batch`` reported of its objects, if this API says."""

    def preview(self, first_body: bytes | None) -> dict[str, Any]:
        """The dry run's view of the first requests, keys masked."""

    def requests(self, batches: int) -> int:
        """The requests a plan of ``batches`` batches takes, when nothing is retried."""


class PartnerCohortSink:
    """Braze's partner cohort import API: the cohort's name, then ``cohorts/users``."""

    batch_size = MAX_IDENTIFIERS_PER_REQUEST
    batch_path = "cohorts/users"
    addressable = frozenset(KINDS)

    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec
        destination = spec.destination
        self._builder = BodyBuilder(
            partner_api_key=destination.partner_api_key,
            client_secret=destination.data_import_key,
            cohort_id=spec.cohort_id,
        )

    def __repr__(self) -> str:
        return f"PartnerCohortSink(cohort_id={self.spec.cohort_id!r})"

    def opening(self) -> tuple[str, bytes, str]:
        destination = self.spec.destination
        body = orjson.dumps(
            {
                "partner_api_key": destination.partner_api_key,
                "client_secret": destination.data_import_key,
                **name_fields(self.spec),
            }
        )
        return "cohorts", body, "cohort name"

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        return self._builder.changes_body(chunk)

    def read_answer(self, batch: Batch, answer: bytes) -> None:
        return None  # cohort import answers {"message": "success"} and no more

    def preview(self, first_body: bytes | None) -> dict[str, Any]:
        first: dict[str, Any] | None = None
        if first_body is not None:
            first = orjson.loads(first_body)
            first["partner_api_key"] = secrets.mask_prefix(first["partner_api_key"])
            first["client_secret"] = secrets.mask_prefix(first["client_secret"])
        return {"first_request": first}

    def requests(self, batches: int) -> int:
        return batches + 1  # the cohort name first


class RestAttributeSink:
    """Braze's ``POST /users/track``: 75 attribute objects a request, nothing before."""

    batch_size = MAX_ATTRIBUTE_OBJECTS
    batch_path = TRACK_PATH
    addressable = ADDRESSABLE_KINDS

    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec
        self._builder = TrackBodyBuilder(spec.destination, spec.cohort_id)

    def __repr__(self) -> str:
        return f"RestAttributeSink(cohort_id={self.spec.cohort_id!r})"

    def opening(self) -> None:
        return None

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        return self._builder.changes_body(chunk)

    def read_answer(self, batch: Batch, answer: bytes) -> TrackAnswer:
        return read_track_answer(answer, batch.body)

    def preview(self, first_body: bytes | None) -> dict[str, Any]:
        destination = self.spec.destination
        return {
            "url": f"{destination.endpoint.rstrip('/')}/{TRACK_PATH}",
            "headers": {"Authorization": "Bearer " + secrets.mask_prefix(destination.rest_api_key)},
            "attribute": destination.attribute_name(self.spec.cohort_id),
            "attribute_mode": destination.attribute_mode,
            "first_request": orjson.loads(first_body) if first_body is not None else None,
        }

    def requests(self, batches: int) -> int:
        return batches


def sink_for(spec: ExportSpec) -> PartnerCohortSink | RestAttributeSink:
    """The sink of ``spec``'s destination type."""
    if spec.destination.type == REST_ATTRIBUTE:
        return RestAttributeSink(spec)
    return PartnerCohortSink(spec)


def batch_size_of(spec: ExportSpec) -> int:
    """Plan rows per request for ``spec``'s destination: its batch numbers depend on it."""
    return (
        MAX_ATTRIBUTE_OBJECTS
        if spec.destination.type == REST_ATTRIBUTE
        else (MAX_IDENTIFIERS_PER_REQUEST)
    )


def name_fields(spec: ExportSpec) -> dict[str, str]:
    """The fields of the ``cohorts`` (create or rename) request."""
    created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"cohort_id": spec.cohort_id, "name": spec.name, "created_at": created_at}
