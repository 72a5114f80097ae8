"""Settings read from the environment (``COHORTSYNC_*``).

The home directory holds everything the exporting side keeps: the embedded
warehouse, the catalog, snapshots, run staging files and the secret key file,
none of it for other local users: the home is 0700 and what is written in it
0600 (:mod:`cohortsync.filemodes`).
It must be an absolute directory: an empty ``COHORTSYNC_HOME=`` would make the
current directory the home (secret key included), and a relative one would
move with it, so the next command run elsewhere (cron, the scheduler) would
find no catalog and no key. Both are refused rather than guessed.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cohortsync.errors import ConfigError
from cohortsync.filemodes import open_private_home


class Settings(BaseSettings):
    """Process-wide settings; construct a fresh one to pick up env changes."""

    model_config = SettingsConfigDict(env_prefix="COHORTSYNC_", extra="ignore")

    # The raw text of COHORTSYNC_HOME (None: unset); checked by :attr:`home_dir`,
    # lazily, so commands that never touch the home do not depend on it.
    home: str | None = None
    warehouse: str | None = None
    partner_api_key: SecretStr | None = None
    partner_api_key_us: SecretStr | None = None
    partner_api_key_eu: SecretStr | None = None
    braze_db: str | None = None
    # Host directories DuckDB queries may read, os.pathsep-separated; none by default.
    allow_files: str = ""
    # Where a mirror diffs: "auto" inside the warehouse where the engine can
    # (PostgreSQL, Spark), "local" always in cohortsync (cohortsync.warehouse.capabilities).
    mirror_diff: str = "auto"
    # The warehouse schema of the snapshot tables of in-warehouse mirrors.
    snapshot_schema: str = "cohortsync"
    # Delivery of saved jobs' alerts (docs/alerts.md): seconds an attempt waits for
    # the webhook, attempts in all, seconds before the second (doubled after each).
    alert_timeout: float = 5.0
    alert_attempts: int = 3
    alert_backoff: float = 1.0

    @cached_property
    def home_dir(self) -> Path:
        """The home directory, created on first use, private (:mod:`cohortsync.filemodes`).

        Created 0700; from here on the process writes files 0600 (umask 077);
        an older home is made private, in one warning line.

        Raises:
            ConfigError: ``COHORTSYNC_HOME`` is empty or relative, names a file,
                or the directory cannot be created.
        """
        path = home_path(self.home)
        try:
            open_private_home(path)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(
                f"the home {path} (COHORTSYNC_HOME) is not a directory",
                hint="set COHORTSYNC_HOME to a directory, or move that file away",
            ) from None
        except OSError as error:
            raise ConfigError(
                f"cannot create the home directory {path} (COHORTSYNC_HOME): {error.strerror}",
                hint="set COHORTSYNC_HOME to a directory you can write, or unset it for "
                "~/.cohortsync",
            ) from None
        return path

    @property
    def warehouse_url(self) -> str:
        """The warehouse URL: ``COHORTSYNC_WAREHOUSE`` or the embedded DuckDB file."""
        return self.warehouse or f"duckdb:///{self.home_dir / 'warehouse.duckdb'}"

    @property
    def allowed_directories(self) -> list[Path]:
        """``COHORTSYNC_ALLOW_FILES`` as directories; queries read no host file without one."""
        return [Path(part).expanduser() for part in self.allow_files.split(os.pathsep) if part]

    @property
    def catalog_path(self) -> Path:
        return self.home_dir / "catalog.db"

    @property
    def braze_db_url(self) -> str:
        """The receiving service's store: ``COHORTSYNC_BRAZE_DB`` or SQLite in the home."""
        return self.braze_db or f"sqlite:///{self.home_dir / 'braze.db'}"

    def partner_api_key_for(self, endpoint: str) -> str:
        """The partner API key for a Braze REST endpoint.

        Braze issues one partner key for every US cluster and one for the EU
        cluster; EU endpoints are ``*.braze.eu`` and the ``fra-`` hosts. A
        region key wins over the generic ``COHORTSYNC_PARTNER_API_KEY``.
        """
        region = endpoint_region(endpoint)
        regional = self.partner_api_key_eu if region == "eu" else self.partner_api_key_us
        key = regional or self.partner_api_key
        if key is None:
            variable = f"COHORTSYNC_PARTNER_API_KEY_{region.upper()}"
            raise ConfigError(
                f"no partner API key for the {region.upper()} region of {endpoint}",
                hint=f"set {variable} or COHORTSYNC_PARTNER_API_KEY",
            )
        return key.get_secret_value()


def home_path(raw: str | None) -> Path:
    """The home named by ``COHORTSYNC_HOME`` (``raw``), or ``~/.cohortsync`` when unset.

    Raises:
        ConfigError: ``raw`` is empty or blank, or a relative path.
    """
    if raw is None:
        return Path.home() / ".cohortsync"
    if not raw.strip():
        raise ConfigError(
            "COHORTSYNC_HOME is set but empty, which would make the current directory the home",
            hint="set it to a directory, e.g. export COHORTSYNC_HOME=$HOME/.cohortsync, "
            "or unset it to use ~/.cohortsync",
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(
            f"COHORTSYNC_HOME={raw!r} is a relative path, so the home and its secret key would "
            "change with the current directory",
            hint=f"set it to an absolute directory, e.g. {Path.cwd() / path}, or unset it "
            "for ~/.cohortsync",
        )
    return path


def endpoint_region(endpoint: str) -> str:
    """``"eu"`` for Braze's EU hosts (``*.braze.eu``, ``fra-*``), else ``"us"``."""
    try:
        host = (urlsplit(endpoint).hostname or endpoint).lower()
    except ValueError as error:
        raise ConfigError(
            f"the endpoint {endpoint!r} is not a valid URL: {error}",
            hint="give the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com",
        ) from None
    if host.endswith(".braze.eu") or host.startswith("fra-") or ".fra-" in host:
        return "eu"
    return "us"
