"""Log lines of the long-running commands, as text or as JSON, set up in one place.

``cohortsync braze serve``, ``cohortsync scheduler`` and ``cohortsync console``
run for days under a supervisor that ships their stderr to a log store. Such a
store reads one JSON object per line far better than text, so each of them
takes ``--log-format text|json`` (or ``COHORTSYNC_LOG_FORMAT``):

- ``text`` (the default) is what they always printed, untouched;
- ``json`` prints every line of the process as one JSON object on stderr:
  ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, and the
  structured fields the line has (``job``, ``run_id``, ``cohort``,
  ``status``, ``duration_s``, an access line's ``method``, ``route``,
  ``status`` and ``client``...). uvicorn's error and access loggers go
  through the same handler, so one process prints one format; so do the
  lines a command prints when it starts (:func:`announce`) and the one-line
  error it ends with (:func:`announce_error`).

Fields come from two places: ``extra={...}`` on one call, and
:func:`log_context`, which adds fields to every line logged in its block
(in that thread or task), so that the export's own lines, which know
nothing of the scheduler, carry the job they run for.

Nothing here knows any key; keeping secrets out of lines is each caller's
duty (``docs/security.md`` lists what is logged). The one redaction here is
for URLs: uvicorn logs each request's path with its query string, and a
one-time login link carries its token there (:func:`redacted_path`), in
either format.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

LOG_FORMATS = ("text", "json")
ENV_VAR = "COHORTSYNC_LOG_FORMAT"

# Query parameters whose values are credentials: never written to a log line.
SECRET_PARAMETERS = frozenset(
    {"token", "key", "api_key", "secret", "client_secret", "password", "partner_api_key"}
)
REDACTED = "[redacted]"
_SECRET_VALUE = re.compile(
    r"(?<![^&;])(" + "|".join(sorted(SECRET_PARAMETERS)) + r")=[^&;#]*", re.IGNORECASE
)

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "cohortsync_log_fields", default=_NO_FIELDS
)
_current = "text"


def current_format() -> str:
    """The format :func:`configure` set up for this process (``text`` until it is called)."""
    return _current


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every JSON line logged in this block, in this thread or task."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Any) -> None:
    """Add ``fields`` to the current :func:`log_context` until its block ends."""
    _fields.set({**_fields.get(), **fields})


def redacted_path(path: str) -> str:
    """``path`` (with its query string) with the values of credential parameters hidden.

    Only those values change; the rest of the query is left as the client sent it.
    """
    if "?" not in path:
        return path
    head, _, query = path.partition("?")
    return head + "?" + _SECRET_VALUE.sub(lambda found: f"{found[1]}={REDACTED}", query)


class RedactQuery(logging.Filter):
    """A filter for uvicorn's access logger: credential parameters of the path hidden.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the client, method, path
    and query, HTTP version and status as arguments; the path is rewritten
    before any formatter reads it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redacted_path(args[2]), args[3], args[4])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_access_fields(record))
        entry.update(_fields.get())
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one of uvicorn's access lines (client, method, route, status)."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "route": path, "status": status}


def configure(
    log_format: str, *, level: int = logging.INFO, text_format: str | None = None
) -> None:
    """Set up this process's log lines in ``log_format`` (``text`` or ``json``).

    ``text`` keeps the command's own lines: with ``text_format``, a stderr
    handler with that format at ``level`` (what the scheduler always had);
    without, nothing changes. ``json`` puts one :class:`JsonFormatter` handler
    on stderr at the root, at ``level``; pass :func:`uvicorn_log_config` to
    uvicorn so its loggers use it too.
    """
    global _current
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    _current = log_format
    if log_format == "text":
        if text_format is not None:
            logging.basicConfig(stream=sys.stderr, format=text_format, level=level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``log_format``, access paths redacted in both.

    ``text``: uvicorn's own configuration (its ``INFO:     ...`` lines, the
    access log on stdout). ``json``: its loggers keep their levels and hand
    their records to the root's JSON handler (:func:`configure`), on stderr.
    """
    from uvicorn.config import LOGGING_CONFIG

    redact = {"redact_query": {"()": RedactQuery}}
    if log_format == "text":
        config: dict[str, Any] = orjson.loads(orjson.dumps(LOGGING_CONFIG))
        config["filters"] = redact
        config["loggers"]["uvicorn.access"]["filters"] = ["redact_query"]
        return config
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": redact,
        "loggers": {
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {
                "level": "INFO",
                "handlers": [],
                "propagate": True,
                "filters": ["redact_query"],
            },
        },
    }


def announce(message: str, *, logger: str = "cohortsync", **fields: Any) -> None:
    """A line a command prints for its user (where it serves, how to log in).

    Text: the message as it is, on stderr. JSON: an INFO record of
    ``logger`` with ``fields``.
    """
    if _current == "json":
        logging.getLogger(logger).info(message, extra=fields)
    else:
        print(message, file=sys.stderr, flush=True)


def announce_error(message: str, **fields: Any) -> bool:
    """In JSON, log the command's last error line as an ERROR record; ``False`` in text."""
    if _current != "json":
        return False
    logging.getLogger("cohortsync").error(message, extra=fields)
    return True
