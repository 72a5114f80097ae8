"""The dependency audit's verdicts (``.ci/audit``), on saved pip-audit reports, and one real run.

The script is run as CI runs it, a subprocess, with ``--report`` on saved
outputs of ``pip-audit --format json`` in ``fixtures/``:

- ``nothing-audited.json`` and ``service-unreachable.stderr`` are real:
  pip-audit 2.10.1 run on this project's environment on a machine that
  reaches no vulnerability service (every package "could not be audited",
  while pip-audit said "No known vulnerabilities found" and exited 0), and
  its traceback when told to use the OSV service there (exit 1, no report);
- ``clean.json``, ``vulnerable.json`` and ``partial.json`` are
  hand-written in pip-audit's documented JSON format (``dependencies`` of
  ``name``, ``version``, ``vulns`` with ``id``, ``fix_versions``,
  ``aliases``, ``description``, or ``skip_reason``; ``fixes``), since no
  vulnerability service answers here to produce them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "audit"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900
    )


def verdict_on(name: str) -> tuple[int, list[str]]:
    done = audit("--report", str(FIXTURES / name))
    assert done.stderr == ""
    return done.returncode, done.stdout.splitlines()


def test_a_clean_report_passes_and_says_how_many_packages_were_checked() -> None:
    code, lines = verdict_on("clean.json")
    assert (code, lines) == (0, ["dependency audit done: no known vulnerability in 3 packages"])


def test_a_known_vulnerability_fails_the_build_naming_each_one() -> None:
    code, lines = verdict_on("vulnerable.json")
    assert code == 1
    assert lines == [
        "requests 2.19.0: PYSEC-2018-28 (CVE-2018-18074, GHSA-x84v-xcm2-53pg); fixed in 2.20.0",
        "jinja2 2.10: PYSEC-2019-217 (CVE-2019-10906, GHSA-462w-v97r-4m45); fixed in 2.10.1",
        "dependency audit FAILED: 2 known vulnerabilities in 2 packages; 1 more could not be "
        "audited; upgrade them (see the lines above)",
    ]


def test_nothing_audited_is_said_plainly_and_does_not_fail_the_build() -> None:
    code, lines = verdict_on("nothing-audited.json")
    assert code == 0
    [line] = lines
    assert line.startswith("dependency audit NOT done: none of the 111 packages could be audited")
    assert "Dependency not found on PyPI" in line and "no package was checked" in line
    assert "no known vulnerability" not in line  # what pip-audit itself claimed


def test_a_partial_audit_names_what_was_not_checked() -> None:
    code, lines = verdict_on("partial.json")
    assert (code, lines) == (
        0,
        [
            "dependency audit PARTIAL: no known vulnerability in 2 packages, but 1 could not be "
            "audited: my-private-dependency (Dependency not found on PyPI and could not be "
            "audited)"
        ],
    )


def test_pip_audit_stopped_by_the_network_is_not_done_and_not_a_failure(tmp_path: Path) -> None:
    done = audit(
        "--report",
        str(tmp_path / "never-written.json"),
        "--stderr",
        str(FIXTURES / "service-unreachable.stderr"),
        "--returncode",
        "1",
    )
    assert done.returncode == 0, done.stdout
    [line] = done.stdout.splitlines()
    assert line.startswith(
        "dependency audit NOT done: the vulnerability service could not be reached"
    )
    assert "Name or service not known" in line


@pytest.mark.parametrize("report", ["", "not json", '{"dependencies": "none"}'])
def test_pip_audit_failing_for_another_reason_fails_the_build(tmp_path: Path, report: str) -> None:
    saved = tmp_path / "report.json"
    saved.write_text(report)
    stderr = tmp_path / "stderr.txt"
    stderr.write_text("pip_audit: error: invalid requirement: 'requests=='\n")
    done = audit("--report", str(saved), "--stderr", str(stderr), "--returncode", "2")
    assert (done.returncode, done.stdout.splitlines()) == (
        2,
        ["dependency audit could not run: pip_audit: error: invalid requirement: 'requests=='"],
    )


def test_the_real_audit_of_this_environment_ends_with_one_honest_verdict() -> None:
    """pip-audit for real on the tests' interpreter: whatever the network, the verdict matches."""
    done = audit()
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    verdict = lines[-1]
    expected = {
        "dependency audit done:": 0,
        "dependency audit PARTIAL:": 0,
        "dependency audit NOT done:": 0,
        "dependency audit FAILED:": 1,
    }
    [code] = [code for start, code in expected.items() if verdict.startswith(start)]
    assert done.returncode == code, done.stdout
