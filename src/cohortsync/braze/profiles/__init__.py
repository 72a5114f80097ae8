"""User profiles: the only places that create users.

Cohort import never does (see :mod:`cohortsync.braze.matching`); a sandbox
is filled with :mod:`.bulk_load` (``cohortsync braze users load``) or with
the REST calls a Braze user would make: :mod:`.tracking` (``/users/track``:
attributes, events, purchases, with Braze's profile fields checked by
:mod:`.fields`), :mod:`.identity_operations` (alias/new, identify, delete)
and :mod:`.rest_operations` (``/users/export/ids``, and the short way for code
to set attributes). :mod:`.listings` shows users in one shape;
:mod:`.lookup` finds one user and everything the dashboard shows of it.
"""
