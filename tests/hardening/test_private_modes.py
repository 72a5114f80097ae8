"""The home and a receiving store are private whatever the umask: 0700 folders, 0600 files.

Every command here is the real executable in a subprocess started under
``umask 022`` (the usual one, under which a plain ``mkdir`` gives 0755 and a
new file 0644), and every mode is read back with :func:`os.stat`. A home or a
store left by an earlier release (0755, 0644) is made private when a command
opens it, saying so in one line; one that belongs to another user is left as
it is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import cli_environment, cohortsync_command, served_url_on_stderr, wait_for

PARTNER_API_KEY = "partner-key-us"
UPGRADE_FIXTURES = Path(__file__).parent.parent / "upgrade" / "fixtures" / "databases"


def under_umask_022(args: list[str]) -> list[str]:
    """``args`` run by a shell that sets ``umask 022`` first."""
    return ["sh", "-c", 'umask 022 && exec "$@"', "sh", *args]


def run022(
    *args: str, env: dict[str, str], stdin: str | None = None, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """``cohortsync ARGS`` to completion under umask 022; its exit code must be ``expect``."""
    done = subprocess.run(
        under_umask_022(cohortsync_command(*args)),
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
    return done


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_under(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) and its mode, as ``{"rel": "0600"}``."""
    found = {".": f"{mode(root):04o}"}
    for directory, directories, files in os.walk(root):
        for name in [*directories, *files]:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = f"{mode(path):04o}"
    return found


def public(found: dict[str, str]) -> dict[str, str]:
    """The entries of :func:`modes_under` that group or others can reach."""
    return {name: value for name, value in found.items() if int(value, 8) & 0o077}


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A home that does not exist yet, two folders deep, and nothing else of the test's."""
    return cli_environment(
        tmp_path / "new" / "home", {"COHORTSYNC_PARTNER_API_KEY": PARTNER_API_KEY}
    )


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Background commands of the test, stopped (SIGTERM, then killed) at its end."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def start022(
    started: list[subprocess.Popen[str]], *args: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        under_umask_022(cohortsync_command(*args)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def sandbox_key(env: dict[str, str]) -> str:
    """A workspace with the partner enabled, in the home's store; its data import key."""
    run022("braze", "workspace", "create", "ws", env=env)
    run022(
        "braze", "partner", "create", "treasuredata", "--api-key", PARTNER_API_KEY,
        "--region", "us", env=env,
    )  # fmt: skip
    run022("braze", "partner", "enable", "treasuredata", "--workspace", "ws", env=env)
    key = run022("braze", "key", "generate", "--workspace", "ws", env=env)
    return str(json.loads(key.stdout)["data_import_key"])


def served_auth(
    tmp_path: Path, environment: dict[str, str], started: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """A served sandbox, 50 members in the warehouse and an authentication ``prod`` for it.

    Every command runs under umask 022; the ``braze serve`` process is returned.
    """
    key = sandbox_key(environment)
    service = start022(started, "braze", "serve", "--port", "0", env=environment)
    base_url, _printed = served_url_on_stderr(service)
    ids = tmp_path / "ids.csv"
    ids.write_text("user_ids\n" + "".join(f"u{number}\n" for number in range(50)))
    run022("warehouse", "load", "members", str(ids), env=environment)
    run022(
        "auth", "create", "prod", "--endpoint", base_url,
        env={**environment, "COHORTSYNC_DATA_IMPORT_KEY": key},
    )  # fmt: skip
    return service


def test_a_new_home_and_all_it_holds_are_private(
    tmp_path: Path, environment: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    home = Path(environment["COHORTSYNC_HOME"])
    served_auth(tmp_path, environment, started)
    run022(
        "export", "--auth", "prod", "--cohort-id", "vip", "--operation", "mirror",
        "--table", "members", env=environment,
    )  # fmt: skip
    console = start022(started, "console", "--port", "0", env=environment)
    wait_for(
        lambda: (home / "catalog.db-wal").exists() and (home / "braze.db-wal").exists(),
        what="the console and the service to hold their databases open",
        process=console,
    )

    found = modes_under(home)
    # What the flow made, so that the next assertion is about something.
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "secret.key"):
        assert found[name] == "0600", (name, found)
    for name in ("braze.db", "braze.db-wal", "braze.db-shm", "warehouse.duckdb"):
        assert found[name] == "0600", (name, found)
    assert found["."] == found["snapshots"] == found["locks"] == "0700", found
    snapshot_files = [name for name in found if name.startswith("snapshots/")]
    assert any(name.endswith(".parquet") for name in snapshot_files), found
    assert public(found) == {}
    # The folder cohortsync created to hold the home is private too.
    assert mode(home.parent) == 0o700


def test_an_interrupted_run_keeps_its_plan_and_ack_log_private(
    tmp_path: Path, environment: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    """A run that failed leaves its staging folder: plan and ack log, identifiers in them."""
    home = Path(environment["COHORTSYNC_HOME"])
    service = served_auth(tmp_path, environment, started)
    # The service stops: the run plans, then fails on its first request and stays resumable.
    service.send_signal(signal.SIGTERM)
    service.communicate(timeout=30)
    failed = subprocess.run(
        under_umask_022(
            cohortsync_command(
                "export", "--auth", "prod", "--cohort-id", "vip", "--operation", "mirror",
                "--table", "members",
            )
        ),
        env={**environment, "COHORTSYNC_HTTP_MAX_ATTEMPTS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert failed.returncode != 0, failed.stdout
    found = modes_under(home)
    run_files = [name for name in found if name.startswith("runs/") and name.count("/") >= 2]
    assert any(name.endswith("changes.parquet") for name in run_files), (found, failed.stderr)
    assert public(found) == {}


def old_home(environment: dict[str, str]) -> tuple[Path, str]:
    """A home as an earlier release left it under umask 022: 0755 folders, 0644 files.

    (``secret.key`` was 0600 already.) Also what ``query list --json`` printed there.
    """
    home = Path(environment["COHORTSYNC_HOME"])
    run022("braze", "workspace", "create", "ws", env=environment)
    ids = home.parent / "ids.csv"
    ids.write_text("user_ids\nu1\n")
    run022("warehouse", "load", "members", str(ids), env=environment)
    run022("query", "save", "q", "--sql", "SELECT 'u1' AS user_ids", env=environment)
    listed = run022("query", "list", "--json", env=environment).stdout
    (home / "locks").mkdir()
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home, listed


def test_an_older_home_is_made_private_on_open_in_one_line(environment: dict[str, str]) -> None:
    home, listed = old_home(environment)
    assert mode(home) == 0o755 and mode(home / "catalog.db") == 0o644

    done = run022("query", "list", "--json", env=environment)

    assert done.stdout == listed  # the command did its work as before
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"made the home {home} private: "), lines
    for change in (
        "the directory 0755 -> 0700",
        "catalog.db 0644 -> 0600",
        "warehouse.duckdb 0644 -> 0600",
        "braze.db 0644 -> 0600",
        "locks 0755 -> 0700",
    ):
        assert change in lines[0], (change, lines[0])
    assert mode(home) == 0o700
    for name in ("catalog.db", "warehouse.duckdb", "braze.db"):
        assert mode(home / name) == 0o600, name
    assert mode(home / "locks") == 0o700
    # Made private once: the next command has nothing to say.
    assert run022("query", "list", "--json", env=environment).stderr == ""


def test_a_readable_secret_key_is_left_for_its_own_refusal(environment: dict[str, str]) -> None:
    """A key file others could read may have been read: cohortsync refuses it (with what to
    do) when it is used, rather than quietly narrowing it with the rest of the home."""
    home, _listed = old_home(environment)
    (home / "secret.key").write_bytes(b"not used by this command\n")
    (home / "secret.key").chmod(0o644)

    done = run022("query", "list", "--json", env=environment)

    assert "catalog.db 0644 -> 0600" in done.stderr
    assert "secret.key" not in done.stderr
    assert mode(home / "secret.key") == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a home to another user needs root")
def test_a_home_of_another_user_is_left_as_it_is(environment: dict[str, str]) -> None:
    home, listed = old_home(environment)
    nobody = 65534
    for path in [home, *home.rglob("*")]:
        os.chown(path, nobody, nobody)
    before = modes_under(home)

    done = run022("query", "list", "--json", env=environment)

    assert done.stdout == listed
    assert done.stderr == ""
    assert modes_under(home) == before


def test_a_new_store_elsewhere_is_private_and_so_are_its_wal_files(
    tmp_path: Path, environment: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    """``--db`` outside the home: the file 0600 (its -wal and -shm follow), new folders 0700."""
    existing = tmp_path / "srv"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    store = existing / "stores" / "braze" / "braze.db"
    url = f"sqlite:///{store}"
    service = start022(started, "braze", "serve", "--port", "0", "--db", url, env=environment)
    served_url_on_stderr(service)
    wait_for(lambda: (store.parent / "braze.db-shm").exists(), what="the store's -shm file")

    assert mode(store) == 0o600
    assert mode(store.parent / "braze.db-wal") == 0o600
    assert mode(store.parent / "braze.db-shm") == 0o600
    assert mode(store.parent) == mode(store.parent.parent) == 0o700
    assert mode(existing) == 0o755  # a folder cohortsync did not create keeps its mode
    # The service alone touched no home: the store's modes are the file's own, not a umask's.
    assert not Path(environment["COHORTSYNC_HOME"]).exists()


def test_an_older_store_elsewhere_is_made_private_and_its_backup_too(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """A store of an earlier schema, 0644: made 0600 in one line; the upgrade's backup is 0600."""
    store = tmp_path / "stores" / "braze.db"
    store.parent.mkdir()
    shutil.copy(UPGRADE_FIXTURES / "braze-0001.db", store)
    store.chmod(0o644)

    done = run022("braze", "db", "upgrade", "--db", f"sqlite:///{store}", env=environment)

    assert f"made the store {store} private: braze.db 0644 -> 0600" in done.stderr
    assert mode(store) == 0o600
    backups = sorted(store.parent.glob("braze.db.bak-*"))
    assert backups, done.stdout + done.stderr
    assert [mode(backup) for backup in backups] == [0o600] * len(backups)
    again = run022("braze", "db", "current", "--db", f"sqlite:///{store}", env=environment)
    assert "private" not in again.stderr


def test_a_home_reached_through_a_symbolic_link_is_made_private(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """``~/.cohortsync -> /data/cohortsync``: the folder the link names is the home."""
    target = tmp_path / "data" / "cohortsync"
    target.mkdir(parents=True)
    target.chmod(0o755)
    link = Path(environment["COHORTSYNC_HOME"])
    link.parent.mkdir()
    link.symlink_to(target)

    done = run022("query", "list", "--json", env=environment)

    assert f"made the home {link} private: the directory 0755 -> 0700" in done.stderr
    assert mode(target) == 0o700
    assert mode(target / "catalog.db") == 0o600
