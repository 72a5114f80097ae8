"""What each stage of an export run returns; the run's report is built from them.

A run goes ``staging -> planning -> sending -> committing``
(:mod:`cohortsync.export.reporting`). Staging returns :class:`Staged` (the
rows read and the values skipped), planning :class:`Planned` (the plan and a
mirror's diff counts) and sending :class:`Sent` (the identifiers the server
acknowledged and the requests it took). Nothing writes into a shared report:
:meth:`cohortsync.export.report.ExportReport.from_stages` assembles it once,
when the run ends, from the results gathered so far, so a run that failed half
way reports exactly the stages it got through.

Sending counts through a :class:`SendTally` its caller holds, because a send
that fails or is interrupted still acknowledged some batches, and the run
history (and the run that resumes it) must record them. A resumed run starts
from what the interrupted attempt recorded (:class:`Recorded`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cohortsync.export.batches import Batch
from cohortsync.export.plan import Plan
from cohortsync.export.rest_attribute import MatchTally, TrackAnswer, merge_match
from cohortsync.export.staging import StagedCounts

SKIP_REASONS = ("null", "empty", "invalid", "duplicate")


def _no_skips() -> dict[str, int]:
    return dict.fromkeys(SKIP_REASONS, 0)


@dataclass(frozen=True)
class Staged:
    """What staging read of the source.

    ``skipped`` counts the values dropped for each reason over every kind, and
    ``skipped_by_kind`` for each kind; ``invalid`` describes the first invalid
    ones; ``kinds`` are the identifier kinds the result holds (the report
    counts what was sent of each, from zero); ``unaddressable`` counts, by
    kind, the distinct identifiers the destination cannot address and that
    were left out of the plan (device ids on ``/users/track``).
    """

    rows_read: int = 0
    skipped: Mapping[str, int] = field(default_factory=_no_skips)
    skipped_by_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    invalid: tuple[Mapping[str, Any], ...] = ()
    ignored_columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    unaddressable: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        counts: StagedCounts,
        ignored_columns: tuple[str, ...],
        unaddressable: Mapping[str, int] | None = None,
    ) -> Staged:
        """The result of a staging that read the source to its end."""
        return cls(
            rows_read=counts.rows_read,
            skipped=counts.skipped(),
            skipped_by_kind=counts.skipped_by_kind(),
            invalid=tuple(item.to_dict() for item in counts.invalid_samples),
            ignored_columns=ignored_columns,
            kinds=tuple(counts.kinds),
            unaddressable=dict(unaddressable or {}),
        )


@dataclass(frozen=True)
class Planned:
    """The plan a run sends, and what the report shows of its planning (a mirror's diff)."""

    plan: Plan
    mirror: Mapping[str, Any] | None = None

    @property
    def batches(self) -> int:
        return self.plan.batches


@dataclass(frozen=True)
class Sent:
    """What one attempt at sending got acknowledged, by kind, and the requests it made.

    ``requests`` counts every HTTP request (the cohort name call, batches and
    retries); ``retries`` how many of them were retries. ``match`` is what the
    answers said of the objects they acknowledged, for a destination whose
    answers say it (``/users/track``'s non-fatal errors), else ``None``.
    """

    identifiers: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    match: MatchTally | None = None
    # the requests in flight: the setting (a count or "auto"), the highest, the last
    concurrency: Mapping[str, int | str] | None = None


class SendTally:
    """Counts a send as it goes, so a failed or interrupted one still reports its part.

    Acknowledgements come from the send's event loop, one at a time.
    """

    def __init__(self) -> None:
        self._identifiers: dict[str, int] = {}
        self._requests = 0
        self._retries = 0
        self._match: MatchTally | None = None
        self._concurrency: dict[str, int | str] | None = None

    def acknowledged(self, batch: Batch, answer: TrackAnswer | None = None) -> None:
        """The server acknowledged ``batch``; ``answer`` is what it said of its objects."""
        for kind, count in batch.counts.items():
            self._identifiers[kind] = self._identifiers.get(kind, 0) + count
        if answer is not None:
            if self._match is None:
                self._match = MatchTally()
            self._match.add(batch.size, answer)

    def requests_made(
        self, requests: int, retries: int, concurrency: Mapping[str, int | str] | None = None
    ) -> None:
        """The send is over: it made ``requests`` HTTP requests, ``retries`` of them retries.

        ``concurrency``: how many it had in flight (the setting, the highest, the last).
        """
        self._requests = requests
        self._retries = retries
        self._concurrency = dict(concurrency) if concurrency is not None else None

    def result(self) -> Sent:
        return Sent(
            dict(self._identifiers),
            self._requests,
            self._retries,
            self._match,
            self._concurrency,
        )


@dataclass(frozen=True)
class Recorded:
    """What an interrupted attempt recorded of the run being resumed.

    A resumed run neither stages nor plans again: its report keeps the rows,
    skips and mirror diff of the attempt that planned, and adds what it sends
    to what was already acknowledged.
    """

    staged: Staged = field(default_factory=Staged)
    sent: Mapping[str, int] = field(default_factory=dict)
    mirror: Mapping[str, Any] | None = None
    match: Mapping[str, Any] | None = None

    @classmethod
    def from_report(cls, previous: Mapping[str, Any] | None) -> Recorded:
        """Read from the report the run history holds for the attempt (none: all zero)."""
        if not previous:
            return cls()
        staged = Staged(
            rows_read=int(previous.get("rows_read", 0)),
            skipped=dict(previous.get("skipped", _no_skips())),
            skipped_by_kind=dict(previous.get("skipped_by_kind", {})),
            invalid=tuple(previous.get("invalid", [])),
            ignored_columns=tuple(previous.get("ignored_columns", [])),
            unaddressable=dict(previous.get("unaddressable", {})),
        )
        return cls(
            staged, dict(previous.get("sent", {})), previous.get("mirror"), previous.get("match")
        )

    def match_with(self, sent: Sent) -> dict[str, Any] | None:
        """The run's match report: what was recorded plus what ``sent``'s answers said."""
        if sent.match is None and self.match is None:
            return None
        return merge_match(self.match, sent.match or MatchTally())
