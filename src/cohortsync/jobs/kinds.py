"""Kinds of job: what a runner gets and returns, and the registry the scheduler reads.

A job is named ``"KIND:NAME"``. Saved queries (``query``) and activations
(``activation``) are the built-in kinds; :mod:`cohortsync.scheduler`
registers them, since it is the module that sits above both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cohortsync.catalog import schedules as catalog
from cohortsync.errors import ConfigError
from cohortsync.export.reporting import RunReporter, SilentReporter
from cohortsync.export.stopping import StopToken
from cohortsync.settings import Settings


@dataclass
class JobContext:
    """What a job runner gets: the catalog, the job's name, its stop token and reporter.

    ``stop`` is requested when the scheduler is stopped (SIGTERM): a runner
    passes it on to its export, which stops at its next boundary (and can be
    resumed), and a runner of its own checks it between its steps. ``reporter``
    is how its export shows its progress (the scheduler's logs it).
    """

    catalog: sa.Engine
    settings: Settings
    kind: str
    name: str
    lease_owner: str
    stop: StopToken = field(default_factory=StopToken)
    reporter: RunReporter = field(default_factory=SilentReporter)

    @property
    def job(self) -> str:
        return catalog.job_label(self.kind, self.name)


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job run, as the run history and the webhook see it."""

    status: str  # "succeeded", "failed" or "interrupted"
    run_id: str | None = None
    error: str | None = None
    report: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.status != "succeeded"


JobRunner = Callable[[JobContext], JobResult]

_JOB_KINDS: dict[str, JobRunner] = {}


def register_job_kind(kind: str, runner: JobRunner) -> None:
    """Plug a kind of job into the scheduler: jobs ``"KIND:NAME"`` run through ``runner``."""
    _JOB_KINDS[kind] = runner


def job_runner(kind: str) -> JobRunner:
    """The runner of ``kind``, as registered."""
    try:
        return _JOB_KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"no job kind {kind!r}", hint=f"known kinds: {', '.join(sorted(_JOB_KINDS))}"
        ) from None
