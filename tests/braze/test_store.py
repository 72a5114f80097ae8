"""The store's write discipline: grouped commits isolate each caller's work."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from cohortsync.braze.store import id_counters, open_store
from cohortsync.errors import ConfigError


class Refused(Exception):
    pass


def test_grouped_writes_commit_together_and_fail_alone(db_url: str) -> None:
    store = open_store(db_url)
    name = f"group-{threading.get_ident()}-{id(store)}"
    with store.write() as conn:
        conn.execute(sa.insert(id_counters).values(name=name, next_value=0))
    gate = threading.Event()

    def work(n: int) -> int:
        def write(conn: sa.Connection) -> int:
            conn.execute(
                sa.update(id_counters)
                .where(id_counters.c.name == name)
                .values(next_value=id_counters.c.next_value + n)
            )
            if n % 5 == 0:
                raise Refused(n)  # its update must roll back, and only its own
            return n

        gate.wait()
        return store.write_grouped(write)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(work, n) for n in range(1, 41)]
        gate.set()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except Refused:
                outcomes.append(None)
    assert outcomes == [None if n % 5 == 0 else n for n in range(1, 41)]
    with store.read() as conn:
        total = conn.execute(
            sa.select(id_counters.c.next_value).where(id_counters.c.name == name)
        ).scalar_one()
    assert total == sum(n for n in range(1, 41) if n % 5)
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", r"^the store 'sqlite:///:memory:' must be a file"),
        ("mysql://x/y", r"^unsupported store URL 'mysql://x/y' \(use sqlite:///PATH"),
        ("::not a url::", r"^cannot read the store URL '::not a url::' \(use sqlite:///PATH"),
    ],
)
def test_unusable_store_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_serve_in_background_answers_then_stops(tmp_path: object) -> None:
    import requests

    from cohortsync.braze.server import serve_in_background

    db_url = f"sqlite:///{tmp_path}/served.db"
    with serve_in_background(db_url, rate_limit="10/minute") as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = requests.get(f"{base_url}/openapi.json", timeout=10)
        assert response.status_code == 200
        assert response.json()["info"]["title"] == "cohortsync Braze-compatible service"
    with pytest.raises(requests.ConnectionError, match="Failed to establish a new connection"):
        requests.get(f"{base_url}/openapi.json", timeout=2)
