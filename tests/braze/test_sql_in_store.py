"""The receiving service's SQL lives in its store package only.

Every statement is built in ``cohortsync/braze/store/`` (by concern: accounts,
cohorts, the import path, users, segments); the rules above it call those
queries. This test reads the other modules' source and names any place that
builds or runs a statement, or reaches for a table object directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sqlalchemy as sa

import cohortsync.braze
from cohortsync.braze.store import tables

BRAZE = Path(cohortsync.braze.__file__).parent
STATEMENT_BUILDERS = {
    "select",
    "insert",
    "update",
    "delete",
    "text",
    "func",
    "and_",
    "or_",
    "bindparam",
    "literal",
    "exists",
    "true",
    "false",
}
TABLE_NAMES = {name for name, value in vars(tables).items() if isinstance(value, sa.Table)}


def sql_outside_the_store(path: Path, root: Path = BRAZE) -> list[str]:
    """``file:line what`` for each statement built, run or table imported in ``path``."""
    where = path.relative_to(root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            if (
                isinstance(node.value, ast.Name)
                and node.value.id in ("sa", "sqlalchemy")
                and node.attr in STATEMENT_BUILDERS
            ):
                found.append(f"{where}:{node.lineno} sa.{node.attr}")
            elif node.attr in ("execute", "exec_driver_sql", "scalar", "scalars"):
                found.append(f"{where}:{node.lineno} .{node.attr}(...)")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "cohortsync.braze.store"
        ):
            found += [
                f"{where}:{node.lineno} imports the table {alias.name}"
                for alias in node.names
                if alias.name in TABLE_NAMES
            ]
    return found


def test_the_table_names_are_known() -> None:
    assert {"braze_users", "braze_cohorts", "braze_segments"} <= {
        getattr(tables, name).name for name in TABLE_NAMES
    }


def test_no_sql_outside_the_store_package() -> None:
    modules = [
        path
        for path in sorted(BRAZE.rglob("*.py"))
        if path.relative_to(BRAZE).parts[0] not in ("store", "migrations")
    ]
    assert len(modules) > 10  # the whole service was read, not an empty folder
    offenders = [line for path in modules for line in sql_outside_the_store(path)]
    assert offenders == []


def test_the_check_sees_sql(tmp_path: Path) -> None:
    """The reader is not blind: a module that builds and runs a statement is named."""
    module = tmp_path / "probe.py"
    module.write_text(
        "import sqlalchemy as sa\n"
        "from cohortsync.braze.store import users\n"
        "def f(conn):\n"
        "    return conn.execute(sa.select(users)).first()\n"
    )
    assert sorted(sql_outside_the_store(module, tmp_path)) == [
        "probe.py:2 imports the table users",
        "probe.py:4 .execute(...)",
        "probe.py:4 sa.select",
    ]
