"""Warehouse engines: one interface that streams Arrow record batches.

``open_engine(url)`` picks the engine from the URL: ``duckdb:///path`` for the
embedded default, any other SQLAlchemy URL (``postgresql://...``) otherwise.
Every engine implements :class:`Engine`::

    with open_engine() as engine:
        engine.load("customers", Path("customers.csv"))
        reader = engine.stream("SELECT id AS user_ids FROM customers WHERE country = ?", ["FR"])
        for batch in reader:
            ...
"""

from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE, Engine, FileFormat, LoadMode
from cohortsync.warehouse.connect import open_engine
from cohortsync.warehouse.names import quote_table_name, split_table_name

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Engine",
    "FileFormat",
    "LoadMode",
    "open_engine",
    "quote_table_name",
    "split_table_name",
]
