"""The Braze-compatible receiving service: partner cohort import and a user store.

People run it as a local Braze sandbox (``cohortsync braze serve``) and the
exporter is tested against it. The map:

- :mod:`.store`: the tables and every SQL statement, by concern;
- :mod:`.matching` (cohort imports), :mod:`.profiles` (bulk load, REST
  operations, listings), :mod:`.segments` (filter trees) and :mod:`.keys`:
  the rules, over the store's queries;
- :mod:`.api` assembles the HTTP service from :mod:`.routes` (one router per
  API family), :mod:`.dependencies` (authentication, rate limits) and
  :mod:`.error_handlers`; :mod:`.server` runs it;
- :mod:`.admin` holds the administration operations the CLI calls.
"""

from cohortsync.braze.store import Store, open_store

__all__ = ["Store", "open_store"]
