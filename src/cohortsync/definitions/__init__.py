"""One definition per saved object: what a user declares, checked once.

Each saved object of the exporting side has one pydantic model here, and
every way in builds it: the CLI from its options, ``apply`` from YAML, the
catalog from its rows, the console from its forms. So a bound (``threads``
at most 64), a default and the message that refuses a bad value are written
once and read the same everywhere.

::

    Authentication   auth.py        a workspace endpoint and its data import key
    Query            query.py       a saved query, its optional QueryExport and schedule
    Parent           parent.py      a customer table and its key column
    Segment          segment.py     rules over a parent
    Activation       activation.py  a segment exported to a cohort, maybe on a schedule
    Schedule         schedule.py    a cron expression and its time zone
    CohortExport     fields.py      the settings every export to a cohort shares
    Alerts           alerts.py      a saved job's webhook and the triggers that post to it

The models check what can be checked without the catalog or the warehouse
(names, bounds, the shape of a mapping, cron syntax, time zones); checks
against stored objects and tables stay with the operations that save them.
:func:`validated` turns a refusal into one :class:`~cohortsync.errors.ConfigError`
line. This package imports nothing of cohortsync but ``errors``, so the
catalog and everything above it can use it.
"""

from cohortsync.definitions.activation import Activation, OutputMapping
from cohortsync.definitions.alerts import Alerts
from cohortsync.definitions.auth import Authentication
from cohortsync.definitions.fields import CohortExport, MirrorGuards
from cohortsync.definitions.invalid import RuleBroken, field_problems, validated
from cohortsync.definitions.parent import Parent
from cohortsync.definitions.query import Query, QueryExport
from cohortsync.definitions.schedule import Schedule
from cohortsync.definitions.segment import Segment

__all__ = [
    "Activation",
    "Alerts",
    "Authentication",
    "CohortExport",
    "MirrorGuards",
    "OutputMapping",
    "Parent",
    "Query",
    "QueryExport",
    "RuleBroken",
    "Schedule",
    "Segment",
    "field_problems",
    "validated",
]
