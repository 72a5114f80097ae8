"""Fixtures of the saved-query tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from workbench_helpers import Workbench, make_workbench


@pytest.fixture
def workbench(home: Path, braze_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Workbench:
    monkeypatch.setenv("COHORTSYNC_PARTNER_API_KEY", braze_sandbox.partner_api_key)
    return make_workbench(home, braze_sandbox)
