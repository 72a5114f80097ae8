"""Saved jobs: what the scheduler, saved queries and activations share.

The modules here sit below every kind of job and below the scheduler, so
that ``queries``, ``audience.activations`` and ``scheduler`` all import them
and never each other's internals:

- :mod:`.cron`: cron arithmetic and the clock;
- :mod:`.kinds`: what a job runner gets and returns, and the registry of kinds;
- :mod:`.leases`: the lease a run holds so two runs of one job never overlap;
- :mod:`.history`: the failed runs recorded for jobs that failed before an
  export run existed.
- :mod:`.run_history`: the run history as ``cohortsync runs`` and the console
  read it (views, filters), and resuming a run from its record.
"""
