"""The service's routes, one router per API family.

- :mod:`.partner`: Braze's partner cohort import API (``/partners/{partner}/cohorts[/users]``);
- :mod:`.users`: the REST endpoints that fill and read user profiles (``/users/*``);
- :mod:`.segments`: the REST endpoints that describe segments (``/segments/*``).

Handlers stay thin: the dependencies (:mod:`cohortsync.braze.dependencies`)
authenticate and charge the rate limit, errors become answers in
:mod:`cohortsync.braze.error_handlers`, and each handler does its store work
in one thread-pool call. :mod:`.registration` turns an operation (a plain
function of the store, the caller and the body) into a POST route.
"""
