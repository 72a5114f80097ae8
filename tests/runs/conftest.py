"""Fixtures of the run tests: a recording partner API server and a warehouse.

A command started in the background is the shared ``spawn`` fixture (tests/conftest.py).

The exporter always runs as a real ``cohortsync`` process, so signals and
kills are real; the server is the faithful partner API of the export suite,
which records every request and its answer.
"""

from __future__ import annotations

# The partner API server and warehouse fixtures are the export suite's.
from export.conftest import partner, warehouse

__all__ = ["partner", "warehouse"]
