"""The Braze-compatible receiving service: partner cohort import and a user store.

People run it as a local Braze sandbox (``cohortsync braze serve``) and the
exporter is tested against it. :mod:`.admin` holds the administration
operations, :mod:`.server` runs the HTTP service, :mod:`.store` the tables.
"""

from cohortsync.braze.store import Store, open_store

__all__ = ["Store", "open_store"]
