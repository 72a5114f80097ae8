"""The exporting side's persistent state (SQLAlchemy Core over SQLite).

One module per concern defines its tables on the shared ``metadata`` of
``catalog.db``: authentications, runs and their batch checkpoints, saved
queries, audiences and activations, schedules.
"""
