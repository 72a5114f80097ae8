"""Warehouse engines: one interface that streams Arrow record batches.

``open_engine(url)`` picks the engine from the URL: ``duckdb:///path`` for the
embedded default, any other SQLAlchemy URL (``postgresql://...``) otherwise.
"""
