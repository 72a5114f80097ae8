"""Starting the one Spark session of a process, for the Spark warehouse engine.

pyspark is imported here, and only when a Spark warehouse is first used:
importing cohortsync, or exporting from DuckDB or PostgreSQL, never loads it.

One session per process: a JVM and its SparkContext take seconds to start
(the driver JVM is the whole cluster in ``spark+local://``), and Spark allows
one SparkContext per process anyway. Every engine of the process shares the
session; closing an engine leaves it running, and it ends with the process.
Spark Connect sessions (``sc://``) are gRPC clients without a JVM, one per
remote address.

The driver JVM's own output (log4j lines, stage progress, JVM warnings) goes
to ``$COHORTSYNC_HOME/spark/spark.log``, never to the terminal: a command's
stderr keeps its one-line errors. The JVM logs warnings and errors only, so
the file grows by failures; once it passes :data:`SPARK_LOG_MAX_BYTES` it is
rotated when the next session starts (:func:`rotate_log`), keeping
:data:`SPARK_LOG_KEEP` older files. The JVM holds the file open while it runs,
so a long-running process (the scheduler) rotates it at its next start.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohortsync.errors import ConfigError, SourceError, whole_message
from cohortsync.warehouse.base import DEFAULT_BATCH_SIZE

INSTALL_HINT = "install it with: pip install 'cohortsync[spark]' (pyspark 4)"
JAVA_HINT = (
    "install Java 17 or later (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
)

# JIT settings for a driver that mostly starts, plans a query and streams it:
# the client compiler alone halves the JVM's start-up on a small machine.
_LOCAL_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

# spark.log is rotated at a session's start past this size, into spark.log.1 (then .2, ...).
SPARK_LOG_MAX_BYTES = 10 * 1024 * 1024
SPARK_LOG_KEEP = 3

_lock = threading.Lock()
_classic: tuple[SessionKey, Any] | None = None
_connect: dict[str, Any] = {}


@dataclass(frozen=True)
class SessionKey:
    """What a classic (JVM) session was started for: its master."""

    master: str


def spark_available() -> str | None:
    """Why a Spark session cannot start here (no pyspark, no Java), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed"
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        return "no Java runtime: java is not on PATH and JAVA_HOME is unset"
    return None


def running_classic() -> Any | None:
    """The process's JVM session if one was started, without starting one."""
    return _classic[1] if _classic is not None else None


def _import_pyspark(url: str) -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"the warehouse {url} needs pyspark, which is not installed", hint=INSTALL_HINT
        ) from None
    # pyspark logs every failed query's error as JSON on stderr, beside the
    # exception it raises; the engine reports that exception as one line.
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)


def classic_session(url: str, master: str, spark_dir: Path) -> Any:
    """The process's JVM session for ``master`` (``local[*]`` or ``spark://host:port``).

    Raises:
        ConfigError: pyspark or Java is missing, or the process already runs
            a session for another master.
        SourceError: the JVM did not start (its log says why).
    """
    global _classic
    _import_pyspark(url)
    key = SessionKey(master)
    with _lock:
        if _classic is not None:
            running, session = _classic
            if running != key:
                raise ConfigError(
                    f"this process already runs a Spark session on {running.master}, "
                    f"and Spark allows one per process: cannot open {url}",
                    hint="use one Spark warehouse per command",
                )
            return session
        if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
            raise ConfigError(
                f"the warehouse {url} needs Java: java is not on PATH and JAVA_HOME is unset",
                hint=JAVA_HINT,
            )
        _classic = (key, _start_classic(url, master, spark_dir))
        return _classic[1]


def _start_classic(url: str, master: str, spark_dir: Path) -> Any:
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    local = master.startswith("local")
    spark_dir.mkdir(parents=True, exist_ok=True)
    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName("cohortsync")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.sql.warehouse.dir", str(spark_dir / "warehouse"))
        .set("spark.sql.catalogImplementation", "in-memory")
        .set("spark.sql.session.timeZone", "UTC")
        # Queries read tables, never host files by path (parquet.`/etc/...`).
        .set("spark.sql.runSQLOnFiles", "false")
        .set("spark.sql.execution.arrow.maxRecordsPerBatch", str(DEFAULT_BATCH_SIZE))
        .set("spark.local.dir", str(spark_dir / "tmp"))
    )
    if local:
        # A local session listens on loopback only, and needs few shuffle tasks.
        conf.set("spark.driver.host", "127.0.0.1")
        conf.set("spark.driver.bindAddress", "127.0.0.1")
        conf.set("spark.sql.shuffle.partitions", str(max(2, os.cpu_count() or 2)))
        conf.set("spark.driver.extraJavaOptions", _LOCAL_JAVA_OPTIONS)
        # The driver JVM holds one or two partitions of a streamed result at a
        # time: small partitions keep its memory low (16 MiB of input each).
        conf.set("spark.sql.files.maxPartitionBytes", "16m")
        conf.set("spark.sql.adaptive.advisoryPartitionSizeInBytes", "16m")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log_path = spark_dir / "spark.log"
    rotate_log(log_path)
    try:
        with log_path.open("ab") as log:
            gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
        context = SparkContext(conf=conf, gateway=gateway)
        return SparkSession(context)
    except Exception as error:
        raise SourceError(
            f"cannot start Spark for the warehouse {url}: {whole_message(error)}",
            hint=f"see {log_path}; check that Java 17 or later runs",
        ) from error


def rotate_log(
    path: Path, *, max_bytes: int = SPARK_LOG_MAX_BYTES, keep: int = SPARK_LOG_KEEP
) -> None:
    """Move ``path`` to ``path.1`` (``.1`` to ``.2``, ...) once it holds ``max_bytes`` or more.

    The oldest of the ``keep`` older files is dropped. A log that cannot be
    moved (another process rotating it at the same moment) is left to grow.
    """
    try:
        if path.stat().st_size < max_bytes:
            return
        for number in range(keep - 1, 0, -1):
            older = path.with_name(f"{path.name}.{number}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{number + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))
    except OSError:
        return


def connect_session(url: str) -> Any:
    """A Spark Connect session for ``sc://host:port`` (untested here: needs a server).

    Raises:
        ConfigError: pyspark or the Spark Connect client's packages are missing.
        SourceError: the server cannot be reached.
    """
    _import_pyspark(url)
    with _lock:
        if url in _connect:
            return _connect[url]
        try:
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        except ImportError as error:
            raise ConfigError(
                f"the warehouse {url} needs the Spark Connect client: {whole_message(error)}",
                hint="pip install 'pyspark[connect]'",
            ) from error
        try:
            session = ConnectSession.builder.remote(url).getOrCreate()
        except Exception as error:
            raise SourceError(
                f"cannot connect to the Spark Connect server {url}: {whole_message(error)}",
                hint="check that the server runs and the URL is right (--warehouse or "
                "COHORTSYNC_WAREHOUSE)",
            ) from error
        _connect[url] = session
        return session
