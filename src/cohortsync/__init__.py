"""cohortsync: warehouse query results to Braze cohorts.

Two sides live in this package:

- the exporting side (``warehouse``, ``export``, ``catalog``, ``audience``,
  ``scheduler``): run a query or a segment and keep a Braze cohort fed with it;
- the receiving side (``braze``): a service that speaks Braze's partner cohort
  import API over a real store, used as a local Braze sandbox and as the
  reference the exporter is tested against.
"""

__version__ = "0.1.0"
