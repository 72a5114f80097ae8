"""The export run history as its readers see it, and resuming a run from its record.

``cohortsync runs`` and the web console show the same runs and resume them
the same way: both call these functions and only draw what they return. A
run's view is its public record plus what only this machine knows: whether a
process still holds its cohort (``alive``), and so whether it can be resumed
(``resumable``). A run marked ``running`` that no process holds has died
(killed, crashed); it is resumed like an interrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, get_args

from cohortsync.catalog import run_alerts
from cohortsync.catalog import runs as history
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.runs import RunRecord, RunStatus
from cohortsync.definitions.fields import AUTO_THREADS, ThreadCount
from cohortsync.errors import ConfigError
from cohortsync.export.destinations import resumed_destination
from cohortsync.export.locks import DEFAULT_LOCK_TIMEOUT, CohortLock
from cohortsync.export.report import ExportReport
from cohortsync.export.reporting import RunReporter
from cohortsync.export.resume import resumable as plan_on_disk
from cohortsync.export.run import run_export
from cohortsync.export.snapshots import CohortKey
from cohortsync.export.spec import ExportSpec, MirrorOptions, Source
from cohortsync.export.stopping import StopToken
from cohortsync.settings import Settings

STATUSES: tuple[str, ...] = get_args(RunStatus)
"""The statuses a run can have, in the order a run may go through them."""

JOB_KINDS = ("query", "activation")
"""The kinds of saved job whose runs the history names (``query:NAME``, ``activation:NAME``)."""


def check_status(status: str | None) -> None:
    """Refuse a status filter no run can have, rather than show an empty history.

    Raises:
        ConfigError: ``status`` is not one of :data:`STATUSES`.
    """
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown --status {status!r}", hint="use one of " + ", ".join(STATUSES))


def check_job(job: str | None) -> None:
    """Refuse a job filter that is not a saved job's name, rather than show an empty history.

    Raises:
        ConfigError: ``job`` is not ``KIND:NAME`` with a kind of :data:`JOB_KINDS`.
    """
    if job is None:
        return
    kind, colon, name = job.partition(":")
    if not colon or kind not in JOB_KINDS or not name.strip():
        raise ConfigError(
            f"--job {job!r} is not the name of a saved job",
            hint="give KIND:NAME with KIND one of " + ", ".join(JOB_KINDS) + ", e.g. query:vip",
        )


def run_view(settings: Settings, record: RunRecord) -> dict[str, Any]:
    """A run as JSON, with ``alive`` (a process holds its cohort), ``resumable`` and ``duration_s``.

    ``duration_s`` is the seconds from start to finish, ``None`` while the run
    has not finished.
    """
    view = record.to_dict()
    view.update(cohort_id=record.cohort_id, partner=record.partner)
    alive = False
    if record.status == "running":
        holder = CohortLock(settings.home_dir, CohortKey.for_run(record)).holder()
        alive = holder is not None and holder.run_id in (None, record.id)
    view["alive"] = alive
    # Only a run whose plan is still on disk can continue: one stopped before planning
    # has nothing to resume (the export would refuse it), so it is not offered.
    view["resumable"] = (
        "destination" in record.job
        and (record.status == "interrupted" or (record.status == "running" and not alive))
        and plan_on_disk(settings.home_dir, record)
    )
    view["duration_s"] = (
        (record.finished_at - record.started_at).total_seconds() if record.finished_at else None
    )
    return view


def status_text(view: dict[str, Any]) -> str:
    """A view's status in words: a dead ``running`` run says that no process holds it."""
    if view["status"] == "running" and not view["alive"]:
        return "running (dead: no process holds its cohort)"
    return str(view["status"])


def list_run_views(
    settings: Settings,
    *,
    cohort_id: str | None = None,
    status: str | None = None,
    job: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """The latest runs first, as :func:`run_view`, optionally of one cohort id, status or job.

    ``job`` is a saved job's name, e.g. ``query:vip`` or ``activation:vip``;
    ``before`` a run's id: the page of runs listed after it
    (:func:`cohortsync.catalog.runs.list_runs`).

    Raises:
        ConfigError: an unknown ``status`` (:func:`check_status`) or a ``job``
            that is no saved job's name (:func:`check_job`).
    """
    check_status(status)
    check_job(job)
    catalog = open_catalog(settings.catalog_path)
    try:
        records = history.list_runs(
            catalog, cohort_id=cohort_id, status=status, job=job, limit=limit, before=before
        )
    finally:
        catalog.dispose()
    return [run_view(settings, record) for record in records]


def latest_run_views(settings: Settings, jobs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest run of each saved job in ``jobs`` as :func:`run_view`, by job; none if never run.

    A list of saved jobs calls this once for the whole page: one catalog
    open and one statement per 500 jobs (:func:`cohortsync.catalog.runs.latest_runs`),
    where :func:`list_run_views` per job costs a catalog open and a query each.
    """
    catalog = open_catalog(settings.catalog_path)
    try:
        records = history.latest_runs(catalog, jobs)
    finally:
        catalog.dispose()
    return {job: run_view(settings, record) for job, record in records.items()}


def run_filters(settings: Settings) -> dict[str, list[str]]:
    """What the history can be filtered by: ``jobs`` and ``cohorts`` that have runs."""
    catalog = open_catalog(settings.catalog_path)
    try:
        jobs, cohorts = history.run_facets(catalog)
    finally:
        catalog.dispose()
    return {"jobs": jobs, "cohorts": cohorts}


# Why a run ended, from the first words of its error (see cohortsync.errors): the recorded
# error is the message and hint of the exception that ended it, not the exception's class.
_EXIT_REASONS = (
    ("interrupted by ", "interrupted"),
    ("internal error", "an internal error (a bug: see the log)"),
    ("gave up on the ", "retries exhausted"),
    ("another run of ", "the cohort was busy with another run"),
    ("mirror of ", "the mirror guard refused"),
)


def exit_reason(view: dict[str, Any]) -> str | None:
    """Why a finished run ended, in a few words: "the destination refused", "retries exhausted".

    ``None`` for a run that succeeded or is still running.
    """
    status, error = view["status"], str(view.get("error") or "")
    if status == "running":
        return None if view.get("alive", True) else "died: no process holds its cohort"
    if status == "interrupted":
        return "interrupted"
    if status != "failed":
        return None
    if " refused the " in error and "HTTP " in error:
        return "the destination refused"
    for start, reason in _EXIT_REASONS:
        if start in error:
            return reason
    return "failed"


def error_parts(error: str | None) -> tuple[str, str | None]:
    """A recorded error line as ``(message, hint)``: it was written ``message (hint)``."""
    text = (error or "").strip()
    if not text.endswith(")"):
        return text, None
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[index], 0)
        if depth == 0:
            if index > 1 and text[index - 1] == " ":
                return text[: index - 1], text[index + 1 : -1]
            return text, None
    return text, None


def show_run_view(settings: Settings, run_id: str) -> dict[str, Any]:
    """One run as :func:`run_view`, with ``acknowledged_batches`` and ``alerts``.

    ``acknowledged_batches`` counts the batches the server took; ``alerts``
    lists the run's alert deliveries (:mod:`cohortsync.catalog.run_alerts`).

    Raises:
        ConfigError: no run has that id.
    """
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, run_id)
        acknowledged = len(history.acknowledged_batches(catalog, run_id))
        alerts = [delivery.to_dict() for delivery in run_alerts.deliveries(catalog, run_id)]
    finally:
        catalog.dispose()
    view = run_view(settings, record)
    view["acknowledged_batches"] = acknowledged
    view["alerts"] = alerts
    return view


def resume_run(
    run_id: str,
    *,
    settings: Settings | None = None,
    data_import_key: str | None = None,
    threads: ThreadCount | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    reporter: RunReporter | None = None,
    stop: StopToken | None = None,
) -> ExportReport:
    """Continue an interrupted or killed run from its plan and checkpoints.

    Only the batches the server never acknowledged are sent; a mirror run then
    commits its snapshot. The run must be the latest of its cohort.

    Args:
        run_id: the run to continue, as the history names it.
        settings: read from the environment when ``None``.
        data_import_key: the key, when the run was given an endpoint rather
            than a saved authentication; ``-`` reads stdin, ``None`` the
            environment (:func:`cohortsync.secrets.read_data_import_key`).
        threads: requests in flight; as the run had when ``None``.
        lock_timeout: seconds to wait for another run of the same cohort.
        reporter: told of the run's progress (:mod:`cohortsync.export.reporting`).
        stop: the caller's stop token, as :func:`cohortsync.export.run.run_export` takes.

    Raises:
        ConfigError: no such run, nothing to resume, or a key that is not the run's.
        CohortsyncError: the resumed run failed (see :func:`run_export`).
    """
    settings = settings or Settings()
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, run_id)
    finally:
        catalog.dispose()
    spec = spec_of(record, settings, data_import_key, threads)
    return run_export(
        spec,
        settings=settings,
        resume_run_id=run_id,
        lock_timeout=lock_timeout,
        reporter=reporter,
        stop=stop,
    )


def check_resume(settings: Settings, run_id: str, data_import_key: str | None = None) -> None:
    """Refuse a resume that cannot run before it starts, as :func:`resume_run` would at once.

    A page checks the key it was given here, so a wrong key is shown next
    to its field instead of failing the run's launch.

    Raises:
        ConfigError: as :func:`spec_of` (no such run, nothing to resume, a key not the run's).
    """
    catalog = open_catalog(settings.catalog_path)
    try:
        record = history.get_run(catalog, run_id)
    finally:
        catalog.dispose()
    spec_of(record, settings, data_import_key, None)


def spec_of(
    record: RunRecord, settings: Settings, data_import_key: str | None, threads: ThreadCount | None
) -> ExportSpec:
    """Rebuild a run's export from its public record and the keys kept elsewhere.

    The record holds no key: a run of a saved authentication gets it from
    there (unless ``data_import_key`` is given), any other from
    ``data_import_key``, and the key must be the one the run used.

    Raises:
        ConfigError: the run never reached its export (nothing to resume), or
            the key given does not belong to the run's workspace.
    """
    job = record.job
    if "destination" not in job:
        raise never_sent(record)
    target = job["destination"]
    destination = resumed_destination(target, data_import_key, settings)
    if history.key_hash(destination.data_import_key) != record.key_hash:
        raise ConfigError(
            f"the data import key given is not the one run {record.id} used",
            hint="give the run's key with --data-import-key (or its saved authentication)",
        )
    source = job["source"]
    return ExportSpec(
        source=Source(
            sql=source.get("sql"),
            table=source.get("table"),
            params=tuple(source.get("params") or ()),
            warehouse_url=source.get("warehouse_url"),
        ),
        destination=destination,
        cohort_id=job["cohort_id"],
        cohort_name=job.get("cohort_name"),
        operation=job["operation"],
        alias_column=job.get("alias_column"),
        threads=threads or _threads_of(job["threads"]),
        mirror=MirrorOptions(**job.get("mirror", {})),
        skip_invalid=bool(job.get("skip_invalid", False)),
        job=job.get("job"),
    )


def never_sent(record: RunRecord) -> ConfigError:
    """The error for a saved query's or activation's run that failed before its export began.

    Such a run is recorded only so the history says why the job failed (see
    :mod:`cohortsync.jobs.history`): it has no plan, no destination and no
    checkpoint, so the only way forward is to run the job again.
    """
    job = str(record.job.get("job") or "")
    kind, _, name = job.partition(":")
    again = {
        "activation": f"cohortsync activation run {name}",
        "query": f"cohortsync query run {name}",
    }.get(kind, "cohortsync export ...")
    reason = f" ({record.error})" if record.error else ""
    return ConfigError(
        f"run {record.id} of {job or 'this job'} never started sending, so there is nothing "
        f"to resume{reason}",
        hint=f"fix the cause, then run it again: '{again}'",
    )


def _threads_of(stored: object) -> ThreadCount:
    """A recorded run's threads: a count, or ``auto`` (runs recorded since it exists)."""
    return AUTO_THREADS if stored == AUTO_THREADS else int(str(stored))
