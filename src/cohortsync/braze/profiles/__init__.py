"""User profiles: the only places that create users.

Cohort import never does (see :mod:`cohortsync.braze.matching`); a sandbox
is filled with :mod:`.bulk_load` (``cohortsync braze users load``) or with
the REST calls a Braze user would make (:mod:`.rest_operations`: track,
alias, identify, export). :mod:`.listings` shows users in one shape.
"""
