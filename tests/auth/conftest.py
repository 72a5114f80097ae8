"""The auth tests share the export tests' partner API server and CLI runner."""

from export.conftest import cli, partner, warehouse

__all__ = ["cli", "partner", "warehouse"]
