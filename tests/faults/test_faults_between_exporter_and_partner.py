"""Network faults between a ``cohortsync export`` process and the partner API.

The fault proxy (``support.fault_proxy``) sits between the exporter and the
recording partner API server and breaks chosen ``cohorts/users`` requests:
a connection reset before the request reaches the server, a reset half way
through the answer, an answer held past the client's timeout
(``COHORTSYNC_HTTP_TIMEOUT``, set low here), an answer dripped a byte at a
time, a request delivered twice. Each case runs a first mirror export and a
second one after the warehouse changed, with faults in both, and checks
what the server ended with: exactly the query's result, and changes
delivered more than once only within the requests that were in flight when
a fault struck (threads x 1,000 identifiers per fault). Then the same faults
on the cohort's name request, and an outage that outlasts the retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from runs_helpers import membership, received

from export.partner_server import CLIENT_SECRET, PartnerServer
from support import run_cli
from support.fault_proxy import Fault, FaultProxy

THREADS = 4
TIMEOUT_S = 1.0  # the client's timeout of one request


def users(start: int, stop: int) -> set[tuple[str, str]]:
    return {("user_ids", f"u{i:06}") for i in range(start, stop)}


def table_of(start: int, stop: int) -> str:
    return (
        "CREATE OR REPLACE TABLE t AS SELECT 'u' || lpad(i::VARCHAR, 6, '0') AS user_ids "
        f"FROM range({start}, {stop}) r(i)"
    )


@pytest.fixture
def proxy(partner: PartnerServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    monkeypatch.setenv("COHORTSYNC_HTTP_TIMEOUT", str(TIMEOUT_S))
    proxy = FaultProxy.to(partner.url, stall_s=TIMEOUT_S + 1.5, drip_s=0.002)
    yield proxy
    proxy.stop()


def export(proxy: FaultProxy) -> dict[str, Any]:
    """``cohortsync export`` of table ``t`` through the proxy, mirrored; its JSON report."""
    done = run_cli(
        "export", "--endpoint", proxy.url, "--data-import-key", CLIENT_SECRET,
        "--cohort-id", "vip", "--table", "t", "--operation", "mirror",
        "--threads", str(THREADS), "--max-remove-pct", "100", "--json",
        expect=None, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report.get("report", report)


def resent(partner: PartnerServer) -> int:
    """Identifier changes the server acknowledged more than once, counted over the extras."""
    return sum(count - 1 for count in received(partner).values())


@pytest.mark.parametrize("fault", ["drop", "reset", "stall", "drip", "duplicate"])
def test_the_cohort_ends_exact_whatever_the_network_does(
    fault: Fault,
    partner: PartnerServer,
    proxy: FaultProxy,
    warehouse: Callable[[str], None],
) -> None:
    # First run: 12,000 members, 12 batches; faults on the 2nd and the 7th.
    warehouse(table_of(0, 12_000))
    proxy.script({1: fault, 6: fault})
    first = export(proxy)
    assert [i.index for i in proxy.injected] == [1, 6]
    assert membership(partner) == users(0, 12_000)

    # Second run: 3,000 leave, 4,000 enter; a fault on its first changes.
    warehouse(table_of(3_000, 16_000))
    proxy.script({0: fault, 3: fault})
    second = export(proxy)
    assert [i.index for i in proxy.injected] == [1, 6, 0, 3]
    assert membership(partner) == users(3_000, 16_000)

    faults = len(proxy.injected)
    extra = resent(partner)
    assert extra <= faults * THREADS * 1000
    retries = first["retries"] + second["retries"]
    if fault == "drop":  # the server never saw it: sent again, applied once
        assert retries >= faults
        assert extra == 0
    elif fault in ("reset", "stall"):
        # the answer never came: the batch was sent again, and it had already been applied
        assert retries >= faults
        assert extra >= faults * 1000
    elif fault == "duplicate":
        assert retries == 0  # the client saw one answer per request
        assert extra == faults * 1000
    else:  # drip: slow, but whole, and inside the timeout
        assert retries == 0
        assert extra == 0
    assert first["sent_total"] == 12_000
    assert second["sent_total"] == 7_000


@pytest.mark.parametrize("fault", ["reset", "stall", "duplicate"])
def test_a_fault_on_the_cohort_name_request(
    fault: Fault, partner: PartnerServer, warehouse: Callable[[str], None]
) -> None:
    """The ``cohorts`` request (the cohort's name) broken once: sent again, then the members."""
    proxy = FaultProxy.to(partner.url, path_suffix="/cohorts", stall_s=TIMEOUT_S + 1.5)
    try:
        warehouse(table_of(0, 3_000))
        proxy.script({0: fault})
        report = export(proxy)
    finally:
        proxy.stop()
    assert [i.path for i in proxy.injected] == ["/partners/treasuredata/cohorts"]
    named = [r for r in partner.requests if r.kind == "cohorts" and r.status == 201]
    assert len(named) == 2  # applied twice: retried (reset, stall) or delivered twice
    assert {r.body["name"] for r in named} == {"vip"}
    assert report["retries"] == (0 if fault == "duplicate" else 1)
    assert membership(partner) == users(0, 3_000)
    assert resent(partner) == 0


def test_an_outage_exhausts_the_retries_then_the_next_export_converges(
    partner: PartnerServer, proxy: FaultProxy, warehouse: Callable[[str], None]
) -> None:
    """Every batch request reset: the run fails in one line (exit 5); once the network is
    back, the same export ends with the cohort exact."""
    warehouse(table_of(0, 8_000))
    proxy.script(dict.fromkeys(range(10_000), "reset"))
    done = run_cli(
        "export", "--endpoint", proxy.url, "--data-import-key", CLIENT_SECRET,
        "--cohort-id", "vip", "--table", "t", "--operation", "mirror",
        "--threads", str(THREADS), expect=None, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "after 8 attempts" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(proxy.injected) >= 8  # the first batch tried 8 times at least

    proxy.script({})
    report = export(proxy)
    assert report["retries"] == 0
    assert membership(partner) == users(0, 8_000)
