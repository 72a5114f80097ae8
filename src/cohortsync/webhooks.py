"""Failure notifications: a POST of a run's report to a webhook URL.

A webhook is a courtesy on top of the run history, never a reason for a run to
fail: the POST has a short timeout, and when it fails that failure is logged
and returned, not raised.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import orjson

from cohortsync.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0


def check_webhook_url(url: str) -> str:
    """Refuse anything but an absolute http(s) URL, before the scheduler starts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"webhook URL {url!r} is not an http(s) URL",
            hint="pass e.g. --webhook https://hooks.example.com/cohortsync",
        )
    return url


def webhook_origin(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL: what log lines name.

    A webhook's path and query often are its credential (chat services put
    the token there), so a line never shows them.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def failure_payload(
    job: str,
    *,
    run_id: str | None,
    status: str,
    error: str | None,
    report: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body of a failure notification (a stable, documented shape)."""
    return {
        "event": "run.failed",
        "job": job,
        "run_id": run_id,
        "status": status,
        "error": error,
        "report": report,
    }


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """POST ``payload`` as JSON to ``url``; ``True`` on a 2xx answer.

    Any failure (refused connection, timeout, non-2xx) is logged as a warning
    and reported by the return value only.
    """
    request = urllib.request.Request(
        url,
        data=orjson.dumps(payload, default=str),
        headers={"Content-Type": "application/json", "User-Agent": "cohortsync-scheduler"},
        method="POST",
    )
    origin = webhook_origin(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        log.warning(
            "webhook %s answered HTTP %s for job %s", origin, error.code, payload.get("job")
        )
        return False
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        log.warning("webhook %s failed for job %s: %s", origin, payload.get("job"), error)
        return False
    if not 200 <= status < 300:
        log.warning("webhook %s answered HTTP %s for job %s", origin, status, payload.get("job"))
        return False
    return True
