"""Check a query with the parser of the warehouse it is for, without connecting.

DuckDB queries are checked by :mod:`cohortsync.warehouse.statements`; the
engines reached through SQLAlchemy by :mod:`cohortsync.warehouse.dialect_statements`
(sqlglot), which builds on the former; Spark's (every URL scheme of it, ``sc://``
too) by the Spark engine's own check, in Spark's dialect. This module sits above
them all.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cohortsync.warehouse.connect import SPARK_PREFIXES
from cohortsync.warehouse.statements import check_duckdb_query


def check_query_for(sql: str, warehouse_url: str) -> str:
    """Check ``sql`` with the parser of the warehouse ``warehouse_url`` names (no connection).

    Saved queries and ``apply`` check their SQL when they are defined, so a
    definition that would be refused fails at once rather than at 3 a.m. in
    the scheduler.
    """
    if warehouse_url.startswith("duckdb:"):
        return check_duckdb_query(sql)
    if warehouse_url.startswith(SPARK_PREFIXES):
        # Imported here: the Spark engine's module is loaded only for Spark queries
        # (it never imports pyspark for a check).
        from cohortsync.warehouse.spark_engine import check_spark_query

        return check_spark_query(sql)
    try:
        dialect = make_url(warehouse_url).get_backend_name()
    except ArgumentError:
        dialect = ""
    # Imported here: sqlglot is loaded only for the engines reached through SQLAlchemy.
    from cohortsync.warehouse.dialect_statements import check_sql_query

    return check_sql_query(sql, dialect)
