"""Alembic's entry point for the catalog's revisions (:func:`cohortsync.dbschema.run_env`)."""

from alembic import context

from cohortsync.dbschema import run_env

run_env(context)
