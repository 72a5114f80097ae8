"""Cohort membership as a custom attribute, through Braze's ``POST /users/track``.

Teams without a partner key reach their workspace with a REST API key (the
``users.track`` permission) and make a cohort targetable by a custom
attribute on each profile:

- ``array`` mode (the default): the cohort id is an element of an array
  attribute (``cohorts``), changed with Braze's array operators
  ``{"add": [cohort_id]}`` and ``{"remove": [cohort_id]}``, so cohorts
  delivered to one attribute never overwrite each other;
- ``boolean`` mode: one boolean attribute per cohort (``cohort_<id>``), set
  ``true`` on entry and ``false`` on exit. ``false`` rather than ``null``: a
  segment on *is true* holds exactly the members either way, and *is false*
  still tells former members from profiles the cohort never touched.

Every object carries ``"_update_existing_only": true``: like cohort import,
this path never creates a user. ``/users/track`` addresses users by external
id or alias, never by device id (:func:`unaddressable_kinds`).

A request holds at most 75 attribute objects (Braze's documented limit). The
plan's ``item`` column already holds each identifier as JSON with a trailing
comma (:mod:`cohortsync.export.plan`); an object is that text between a fixed
prefix and suffix, joined by Arrow kernels, so no Python object is built per
identifier. A successful answer may carry non-fatal ``errors`` (Braze: "the
message is successful but has non-fatal errors"); :func:`read_track_answer`
reads them into this path's match report.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from cohortsync.definitions.fields import check_attribute_name
from cohortsync.definitions.invalid import RuleBroken
from cohortsync.errors import ConfigError, SourceError
from cohortsync.export.batches import joined_items, runs_of
from cohortsync.export.identifiers import ALIAS, IdentifierColumns
from cohortsync.export.spec import USER_IDS, Destination

REST_API_KEY_ENV = "COHORTSYNC_REST_API_KEY"
TRACK_PATH = "users/track"
FIRST_ERRORS = 5
"""How many non-fatal errors a run's match report describes (the first ones)."""

ADDRESSABLE_KINDS = frozenset({USER_IDS, ALIAS})
# Arrow string scalars: the kernels join them with the items without a Python object each.
_PREFIXES = {
    USER_IDS: pa.scalar('{"external_id":', pa.string()),
    ALIAS: pa.scalar('{"user_alias":', pa.string()),
}
_EMPTY = pa.scalar("", pa.string())
_BARE_INDEX = re.compile(r"^\s*attributes\[\d+\]\s*:\s*")


def check_attribute(destination: Destination, cohort_id: str) -> None:
    """Refuse an attribute name Braze would not treat as a custom attribute.

    The saved definitions check the same rule when saved
    (:func:`cohortsync.definitions.fields.check_attribute_name`); this is
    its check for ``cohortsync export`` and for runs saved before it.

    Raises:
        ConfigError: empty, too long, starting with ``$``, or a reserved key.
    """
    try:
        check_attribute_name(destination.attribute_name(cohort_id))
    except RuleBroken as broken:
        raise ConfigError(
            broken.message,
            hint="give --attribute a custom attribute name, e.g. cohorts or cohort_vip",
        ) from None


def read_rest_api_key(value: str | None) -> str:
    """The REST API key from ``-`` (stdin) or ``COHORTSYNC_REST_API_KEY`` (``None``).

    A key written on the command line would stay in the shell's history and
    in the process list, so any other value is refused.

    Raises:
        ConfigError: a key given on the command line, no key, or an empty one.
    """
    if value == "-":
        key, source = sys.stdin.readline().strip(), "stdin"
    elif value is None:
        key, source = os.environ.get(REST_API_KEY_ENV, "").strip(), REST_API_KEY_ENV
        if not key:
            raise ConfigError(
                "no REST API key given",
                hint=f"set {REST_API_KEY_ENV}, or pass --rest-api-key - and the key on stdin "
                "(a key with the users.track permission)",
            )
    else:
        raise ConfigError(
            "--rest-api-key takes '-' (the key on stdin), not the key itself",
            hint=f"pass --rest-api-key - and the key on stdin, or set {REST_API_KEY_ENV}",
        )
    if not key:
        raise ConfigError(f"the REST API key from {source} is empty")
    return key


def unaddressable_kinds(columns: IdentifierColumns) -> tuple[str, ...]:
    """The result's identifier kinds ``/users/track`` cannot address (device ids).

    Raises:
        SourceError: the result holds only such identifiers; nothing is sent.
    """
    found = tuple(kind for kind in columns.kinds if kind not in ADDRESSABLE_KINDS)
    if found and len(found) == len(columns.kinds):
        raise SourceError(
            "the result holds only device_ids, and Braze's /users/track cannot address a "
            "user by device id; nothing was sent",
            hint="select external ids as user_ids (or an alias column with --alias-column), "
            "or deliver device ids with --type partner-cohort",
        )
    return found


class TrackBodyBuilder:
    """Builds the ``/users/track`` bodies of one cohort's attribute changes.

    The body holds no key (the key travels in the ``Authorization`` header).

    Args:
        destination: an attribute destination (its mode and attribute).
        cohort_id: the cohort whose membership changes.
    """

    def __init__(self, destination: Destination, cohort_id: str) -> None:
        name = orjson.dumps(destination.attribute_name(cohort_id))
        if destination.attribute_mode == "array":
            element = orjson.dumps([cohort_id])
            add, remove = b'{"add":' + element + b"}", b'{"remove":' + element + b"}"
        else:
            add, remove = b"true", b"false"
        flag = b',"_update_existing_only":true,'
        self._suffixes = {
            removes: pa.scalar((flag + name + b":" + value + b"},").decode(), pa.string())
            for removes, value in ((False, add), (True, remove))
        }
        self.cohort_id = cohort_id

    def __repr__(self) -> str:
        return f"TrackBodyBuilder(cohort_id={self.cohort_id!r})"

    def changes_body(self, chunk: pa.Table) -> tuple[bytes, dict[str, int]]:
        """The body of one request for ``chunk`` (columns kind, should_remove, item)."""
        import pyarrow.compute as pc  # only an attribute export builds its bodies with it

        parts = [b'{"attributes":[']
        counts: dict[str, int] = {}
        for kind, remove, items in runs_of(chunk):
            trimmed = pc.utf8_slice_codeunits(items, 0, -1)  # the item's trailing comma
            objects = pc.binary_join_element_wise(
                _PREFIXES[kind], trimmed, self._suffixes[remove], _EMPTY
            )
            parts.append(joined_items(objects))
            counts[kind] = counts.get(kind, 0) + len(items)
        body = b"".join(parts)
        return body[:-1] + b"]}", counts


@dataclass(frozen=True)
class TrackAnswer:
    """What a successful ``/users/track`` answer said of one request's objects.

    ``reasons`` counts the non-fatal errors by reason; ``first`` describes the
    first few, with the identifier of the object each names (when it says
    which, by ``index``).
    """

    errors: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)
    first: tuple[Mapping[str, Any], ...] = ()


def read_track_answer(answer: bytes, request: bytes) -> TrackAnswer:
    """Read the non-fatal ``errors`` of a 2xx answer to the request body ``request``.

    Braze answers ``{"message": "success", "errors": [...]}`` when some
    objects failed and the others were processed. An error is an object
    (``type``, ``input_array``, ``index``) or, from some servers, a string;
    either way it is counted under its reason.
    """
    try:
        data = orjson.loads(answer) if answer else None
    except orjson.JSONDecodeError:
        return TrackAnswer()
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return TrackAnswer()
    reasons: dict[str, int] = {}
    first: list[dict[str, Any]] = []
    objects: list[Any] | None = None
    for error in errors:
        reason, index = _reason_and_index(error)
        reasons[reason] = reasons.get(reason, 0) + 1
        if len(first) >= FIRST_ERRORS:
            continue
        described: dict[str, Any] = {"reason": reason}
        if index is not None:
            if objects is None:
                objects = orjson.loads(request).get("attributes", [])
            if 0 <= index < len(objects):
                described.update(_identifier_of(objects[index]))
        first.append(described)
    return TrackAnswer(len(errors), reasons, tuple(first))


def _reason_and_index(error: object) -> tuple[str, int | None]:
    if isinstance(error, dict):
        reason = error.get("type") or error.get("message") or orjson.dumps(error).decode()
        index = error.get("index")
        return str(reason), index if isinstance(index, int) else None
    text = str(error)
    match = re.match(r"^\s*attributes\[(\d+)\]", text)
    return _BARE_INDEX.sub("", text), int(match.group(1)) if match else None


def _identifier_of(item: object) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {}
    if "external_id" in item:
        return {"kind": USER_IDS, "identifier": item["external_id"]}
    alias = item.get("user_alias")
    if isinstance(alias, dict):
        return {"kind": ALIAS, "identifier": alias}
    return {}


def merge_match(previous: Mapping[str, Any] | None, answers: MatchTally) -> dict[str, Any]:
    """The run's match report: what an interrupted attempt recorded plus this send's."""
    reasons = dict((previous or {}).get("reasons", {}))
    for reason, count in answers.reasons.items():
        reasons[reason] = reasons.get(reason, 0) + count
    first = list((previous or {}).get("first_errors", []))
    first += [dict(item) for item in answers.first][: max(0, FIRST_ERRORS - len(first))]
    objects = int((previous or {}).get("objects", 0)) + answers.objects
    errors = int((previous or {}).get("errors", 0)) + answers.errors
    return {
        "objects": objects,
        "errors": errors,
        "processed": objects - errors,
        "reasons": reasons,
        "first_errors": first,
    }


class MatchTally:
    """Counts the objects acknowledged and the non-fatal errors of their answers."""

    def __init__(self) -> None:
        self.objects = 0
        self.errors = 0
        self.reasons: dict[str, int] = {}
        self.first: list[Mapping[str, Any]] = []

    def add(self, objects: int, answer: TrackAnswer) -> None:
        self.objects += objects
        self.errors += answer.errors
        for reason, count in answer.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        room = FIRST_ERRORS - len(self.first)
        if room > 0:
            self.first += list(answer.first[:room])
