"""Fixtures of the fault tests: the recording partner API server and a warehouse.

Every part here is real: ``cohortsync`` processes (exporter, schedulers,
the receiving service), the fault proxy's sockets (``support.fault_proxy``),
SIGKILLs. A command started in the background is the shared ``spawn``
fixture (tests/conftest.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The membership helpers of the run tests (runs_helpers) and the workbench (workbench_helpers).
for suite in ("runs", "queries"):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / suite))

# The partner API server and warehouse fixtures are the export suite's.
from export.conftest import partner, warehouse  # noqa: E402

__all__ = ["partner", "warehouse"]
