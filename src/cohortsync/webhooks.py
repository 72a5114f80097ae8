"""Webhook notifications: the scheduler's failure reports and saved jobs' alerts.

A webhook is a courtesy on top of the run history, never a reason for a run to
fail: the POST has a short timeout, and when it fails that failure is logged
and returned, not raised. :func:`post_webhook` tries once (the scheduler's
``--webhook``); :func:`deliver` retries with backoff and says how it ended
(the alerts of :mod:`cohortsync.jobs.alerts`).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from cohortsync.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
# An alert is tried this many times, waiting DEFAULT_BACKOFF seconds, then twice that.
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = 1.0


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
    answer = _post_once(url, orjson.dumps(payload, default=str), timeout, "cohortsync-scheduler")
    if answer.error is not None:
        log.warning(
            "webhook %s %s for job %s", webhook_origin(url), answer.error, payload.get("job")
        )
        return False
    return True


@dataclass(frozen=True)
class Delivery:
    """How a delivery ended: ``delivered`` or ``failed``, after how many attempts.

    ``http_status`` is the last answer's status, if one came; ``error`` says
    why the last attempt failed (``None`` once delivered).
    """

    status: str
    attempts: int
    http_status: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"


@dataclass(frozen=True)
class _Answer:
    http_status: int | None
    error: str | None


def deliver(
    url: str,
    body: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
    agent: str = "cohortsync-alerts",
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST the JSON ``body`` to ``url``, retrying a failure with exponential backoff.

    Each attempt waits at most ``timeout`` seconds for the connection and for
    each read; between attempts it sleeps ``backoff``, then twice that... A
    4xx other than 408 and 429 is the receiver refusing the body, so it is
    not retried. Never raises: the result says how it ended, and the log says
    where (the webhook's origin, never its path: that is often its token).
    """
    origin = webhook_origin(url)
    answer = _Answer(None, "not attempted")
    tries = max(1, attempts)
    for attempt in range(1, tries + 1):
        answer = _post_once(url, body, timeout, agent)
        if answer.error is None:
            return Delivery("delivered", attempt, answer.http_status)
        log.warning("alert webhook %s %s (attempt %d of %d)", origin, answer.error, attempt, tries)
        status = answer.http_status
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            return Delivery("failed", attempt, status, answer.error)
        if attempt < tries:
            sleep(backoff * 2 ** (attempt - 1))
    return Delivery("failed", tries, answer.http_status, answer.error)


def _post_once(url: str, body: bytes, timeout: float, agent: str) -> _Answer:
    """One POST; the answer's status, and why it failed (``None`` on a 2xx)."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": agent},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return _Answer(error.code, f"answered HTTP {error.code}")
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return _Answer(None, f"did not answer within {timeout:g} s")
        return _Answer(None, f"failed: {reason}")
    if not 200 <= status < 300:
        return _Answer(status, f"answered HTTP {status}")
    return _Answer(status, None)
