"""A plain export loads only what it uses.

Every module an export process imports stays resident for the whole run, so
it adds to the run's peak memory. The web console (FastAPI, uvicorn, jinja2),
the schema migrations (alembic), the Spark engine and the terminal drawing
(rich, for a run without a terminal or with ``--json``) belong to other
commands; these tests run the real command in a subprocess and read its
``sys.modules`` at exit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from export.partner_server import CLIENT_SECRET, PARTNER_API_KEY, PartnerServer

# Packages a plain export (and its --help) must not import.
NOT_FOR_AN_EXPORT = ("fastapi", "starlette", "uvicorn", "jinja2", "alembic", "pyspark", "rich")

# Runs the command line like ``python -m cohortsync``; at exit, writes the
# names of the imported modules to the file given as the first argument.
PROBE = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "cohortsync"
from cohortsync.cli.main import main
main()
"""


def imported_by(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``cohortsync ARGS`` with no terminal; how it ended and its top-level imports."""
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    names = listing.read_text().split() if listing.exists() else []
    return done, {name.split(".")[0] for name in names}


def test_export_help_imports_none_of_the_other_commands_packages(tmp_path: Path) -> None:
    done, packages = imported_by(tmp_path, "export", "--help")
    assert done.returncode == 0, done.stderr
    assert "--cohort-id" in done.stdout
    assert "cohortsync" in packages  # the probe saw the command's own imports
    assert sorted(packages.intersection(NOT_FOR_AN_EXPORT)) == []


def test_a_plain_export_imports_none_of_the_other_commands_packages(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE ids AS SELECT 'user-' || i AS user_ids FROM range(2500) t(i)"
        )
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", PARTNER_API_KEY)
    partner = PartnerServer().start()
    try:
        done, packages = imported_by(
            tmp_path,
            "export",
            "--table",
            "ids",
            "--endpoint",
            partner.url,
            "--data-import-key",
            CLIENT_SECRET,
            "--cohort-id",
            "imports",
            "--json",
        )
    finally:
        partner.stop()
    assert done.returncode == 0, done.stderr
    assert '"sent_total":2500' in done.stdout
    assert (
        sum(len(r.body["cohort_changes"][0]["user_ids"]) for r in partner.users_requests()) == 2500
    )
    assert {"duckdb", "pyarrow", "aiohttp"} <= packages  # what the run does use
    assert sorted(packages.intersection(NOT_FOR_AN_EXPORT)) == []
