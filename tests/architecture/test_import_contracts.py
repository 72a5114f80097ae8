"""The import contracts of ``pyproject.toml`` hold, in every test run and so in CI.

``make lint`` runs the same check; running it here too means a new import
cycle, or an import that runs back up the layers, fails the suite wherever
it runs, not only where someone remembered to lint.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(
    cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``lint-imports`` (the dev extra) on the contracts in ``cwd``."""
    executable = Path(sys.executable).with_name("lint-imports")
    assert executable.exists(), (
        f"{executable} is missing: install the dev extra (pip install -e '.[dev]')"
    )
    return subprocess.run(
        [str(executable), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_its_import_contracts() -> None:
    checked = lint_imports()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


def test_the_check_fails_on_a_new_import_cycle(tmp_path: Path) -> None:
    """The same contracts over a copy of the package with one cycle added are broken."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "cohortsync", copy / "cohortsync")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = copy / "cohortsync" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport cohortsync.settings  # a cycle\n")
    checked = lint_imports(tmp_path, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert checked.returncode != 0, checked.stdout
    assert "BROKEN" in checked.stdout
    assert "cohortsync.errors -> cohortsync.settings" in checked.stdout
