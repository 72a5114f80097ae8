"""Pages of the saved definitions: one page read at a time, found by name, with its last runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortsync.audience.activations import create_activation, job_label
from cohortsync.audience.listing import page_of_activations, page_of_parents, page_of_segments
from cohortsync.audience.parents import create_parent
from cohortsync.audience.segments import create_segment
from cohortsync.catalog.db import open_catalog
from cohortsync.catalog.runs import finish_run, start_run
from cohortsync.definitions import Activation, validated
from cohortsync.settings import Settings

FR = {"column": "country", "op": "=", "value": "FR"}
NAMES = ["be-50", "fr_a", "fr_b", "fr_c", "frxd", "us_a", "us_b"]


@pytest.fixture
def saved(warehouse: Path, auth: str) -> list[str]:
    """Seven activations of segment ``fr``, saved out of order."""
    create_parent("customers", "customers", "customer_id")
    create_segment("fr", "customers", FR)
    create_segment("fr_other", "customers", FR)
    for name in reversed(NAMES):
        fields = {"name": name, "segment": "fr", "auth": auth, "cohort_id": name}
        create_activation(validated(Activation, {**fields, "mapping": ["customer_id=user_ids"]}))
    return NAMES


def test_activations_come_a_page_at_a_time_by_name(saved: list[str]) -> None:
    first = page_of_activations(offset=0, limit=3)
    assert [a.name for a in first.rows] == ["be-50", "fr_a", "fr_b"]
    assert (first.total, first.saved, first.offset, first.limit) == (7, 7, 0, 3)
    last = page_of_activations(offset=6, limit=3)
    assert [a.name for a in last.rows] == ["us_b"]
    # Past the end: the last row's page, not an empty one.
    beyond = page_of_activations(offset=70, limit=3)
    assert beyond.offset == 6 and [a.name for a in beyond.rows] == ["us_b"]


def test_a_name_narrows_the_page_but_not_what_is_saved(saved: list[str]) -> None:
    found = page_of_activations(offset=0, limit=3, name_contains=" US_ ")
    assert [a.name for a in found.rows] == ["us_a", "us_b"]
    assert (found.total, found.saved) == (2, 7)
    # _ and % are matched as themselves, not as wildcards.
    assert [a.name for a in page_of_activations(name_contains="fr_").rows] == [
        "fr_a",
        "fr_b",
        "fr_c",
    ]
    assert page_of_activations(name_contains="%").rows == []
    assert page_of_activations(name_contains="nothing-like-it").total == 0


def test_only_the_page_s_last_runs_are_read(saved: list[str]) -> None:
    catalog = open_catalog(Settings().catalog_path)
    try:
        for name in ("fr_a", "us_b"):
            run = start_run(
                catalog,
                job={"job": job_label(name), "cohort_id": name},
                endpoint="http://127.0.0.1:9",
                partner="cohortsync",
                cohort_id=name,
                data_import_key="data-import-key-0001",
                operation="add",
            )
            finish_run(catalog, run, "succeeded", {})
    finally:
        catalog.dispose()
    page = page_of_activations(offset=0, limit=3)
    assert set(page.last_runs) == {"fr_a"}
    assert page.last_runs["fr_a"].status == "succeeded"
    assert set(page_of_activations(offset=3, limit=4).last_runs) == {"us_b"}


def test_parents_and_segments_page_with_the_counts_of_what_uses_them(saved: list[str]) -> None:
    parents = page_of_parents()
    assert [p.name for p in parents.rows] == ["customers"]
    assert parents.segment_counts == {"customers": 2}
    segments = page_of_segments(limit=1)
    assert [s.name for s in segments.rows] == ["fr"] and segments.total == 2
    assert segments.activation_counts == {"fr": 7}
    other = page_of_segments(offset=1, limit=1)
    assert [s.name for s in other.rows] == ["fr_other"] and other.activation_counts == {}
    assert page_of_segments(name_contains="other").saved == 2
