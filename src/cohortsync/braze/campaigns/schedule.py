"""The service's scheduler: a thread that launches due campaigns about every second.

``cohortsync braze serve`` (and :func:`cohortsync.braze.server.serve_in_background`)
run one :class:`CampaignScheduler` beside the HTTP server. Each tick is one
cheap read when nothing is due; a due campaign is launched by
:func:`.launching.launch_due`, whose claim keeps two services on one store
from launching it twice. A tick that fails (a busy store, a segment that
vanished) is logged and the next tick tries again: the campaign stays
scheduled because its launch rolled back whole.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from cohortsync.braze.campaigns.launching import launch_due
from cohortsync.braze.store import Store

logger = logging.getLogger("cohortsync.braze.campaigns")

DEFAULT_INTERVAL = 1.0


class CampaignScheduler:
    """Calls :func:`launch_due` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, store: Store, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self.launches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="campaign scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the tick under way (a launch finishes or rolls back; never half)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def tick(self) -> None:
        try:
            for launched in launch_due(self.store):
                self.launches += 1
                logger.info(
                    "launched %s %r: %d messages in %.2f s",
                    launched["kind"],
                    launched["name"],
                    launched["messages"],
                    launched["seconds"],
                )
        except Exception as error:  # the next tick retries; the service keeps serving
            logger.warning("scheduled launch failed, retrying next tick: %s", error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def __enter__(self) -> CampaignScheduler:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
