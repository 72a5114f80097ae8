"""The ``load`` every engine offers, written once above each engine's own atomic load.

The file is found and its format resolved, the table name split and the
options gathered here, the same way for every engine, before the engine
builds the table (:func:`~cohortsync.warehouse.loading.atomic.load_duckdb`,
:func:`~cohortsync.warehouse.loading.atomic.load_sqlalchemy`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from cohortsync.warehouse.base import FileFormat, LoadMode
from cohortsync.warehouse.files import check_readable, detect_format
from cohortsync.warehouse.loading.options import LoadOptions
from cohortsync.warehouse.names import split_table_name


class LoadsFiles(ABC):
    """An engine's :meth:`~cohortsync.warehouse.base.Engine.load`, over its :meth:`_load_file`."""

    def load(
        self,
        table: str,
        path: Path,
        *,
        mode: LoadMode = "replace",
        format: FileFormat | None = None,
        encoding: str | None = None,
        schema: Mapping[str, str] | None = None,
        allow_empty: bool = False,
    ) -> int:
        """Load ``path`` strictly and atomically (see :mod:`cohortsync.warehouse.loading`)."""
        file_format = detect_format(check_readable(path), format)
        schema_name, name = split_table_name(table)
        options = LoadOptions(
            mode=mode,
            format=file_format,
            encoding=encoding,
            schema=dict(schema or {}),
            allow_empty=allow_empty,
        )
        return self._load_file(table, schema_name, name, path, options)

    @abstractmethod
    def _load_file(
        self, table: str, schema_name: str | None, name: str, path: Path, options: LoadOptions
    ) -> int:
        """Build ``table`` (``schema_name``.``name``) from the checked file in one transaction."""
