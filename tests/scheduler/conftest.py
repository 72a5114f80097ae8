"""Fixtures of the scheduler tests (the helpers live in ``scheduler_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scheduler_helpers import Clock, Probe, WebhookReceiver

from cohortsync.scheduler import register_job_kind
from cohortsync.settings import Settings


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-03-02T12:00:00")


@pytest.fixture
def probe() -> Iterator[Probe]:
    probe = Probe()
    register_job_kind("probe", probe)
    yield probe
    probe.release.set()


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
