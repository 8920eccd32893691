"""Identity's run gates (reference §3.4 step 8, macros/identity/identity_gates.sql), built by real dbt on a
real DuckDB file: a graph that changed too much stops before consent, marts and the sync feeds, until a
person approves it for one run.

Six signed-up users and six anonymous visitors. A later load identifies every visitor with one shared
address (a shared inbox no blocklist knows): the visitors' six profiles merge into one, half of the
twelve profiles the last run had. With the gate at a quarter (and, for this small graph, at least three
profiles), that build stops at identity_graph: consent_status keeps the last run's rows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from cdp_assets.dbt_cli import run_dbt
from cdp_assets_tests.dbt.people import identify, load_lines, query_rows, server_call

SOURCE_ID = "2Gidentitygates0000000001"
USERS = [f"gate-user-{i}" for i in range(6)]
VISITORS = [f"gate-visitor-{i}" for i in range(6)]
SELECT = ("build", "--select", "+consent_status", "+identity_graph_previous", "--indirect-selection", "cautious")
GATES = {"identity_min_changes_to_gate": 3, "identity_max_change_share": 0.25}


def _dbt(tmp: Path, warehouse: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess:
    return run_dbt(SELECT, warehouse, tmp, variables, 300)


def _profiles(warehouse: Path) -> int:
    (row,) = query_rows(warehouse, "select count(distinct profile_id) as n from consent.consent_status")
    return row["n"]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("identity_gates")
    warehouse = tmp / "warehouse.duckdb"
    lines = [identify(user, 1, anonymous_id=f"{user}-laptop", email=f"{user}@acme.io") for user in USERS]
    lines += [server_call("page", 2, None, visitor) for visitor in VISITORS]
    load_lines(warehouse, tmp / "landing", lines, SOURCE_ID)
    result = _dbt(tmp, warehouse, GATES)
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    assert _profiles(warehouse) == 12
    return tmp, warehouse


def test_a_run_that_merges_too_much_stops_until_approved(first: tuple[Path, Path]) -> None:
    tmp, warehouse = first
    load_lines(
        warehouse,
        tmp / "landing2",
        [identify(None, 3, anonymous_id=v, email="inbox@acme.io") for v in VISITORS],
        SOURCE_ID,
    )
    stopped = _dbt(tmp, warehouse, GATES)
    assert stopped.returncode != 0
    assert "FAIL 1 identity_change_share_identity_graph" in stopped.stdout, stopped.stdout
    assert "SKIP" in stopped.stdout  # everything downstream of identity_graph
    assert _profiles(warehouse) == 12  # consent still has the last good graph's profiles

    # Left alone, the next run stops again: the snapshot it compares with did not move.
    assert _dbt(tmp, warehouse, GATES).returncode != 0

    approved = _dbt(tmp, warehouse, {**GATES, "identity_gates_approved": True})
    assert approved.returncode == 0, approved.stdout
    assert _profiles(warehouse) == 7  # the six visitors are one person now
    merges = query_rows(warehouse, "select count(*) as n from identity.identity_merges where reason = 'merged'")
    assert merges == [{"n": 5}]  # the oldest anchor survives; five ids disappear, each logged

    # The approval was for one run: the next one compares with the approved graph and passes unaided.
    assert _dbt(tmp, warehouse, GATES).returncode == 0


def _gate(warehouse: Path, tmp: Path, gate: str, variables: dict[str, Any]) -> subprocess.CompletedProcess:
    """Run one gate's dbt test alone, with `variables` set."""
    return run_dbt(("test", "--select", f"test_name:{gate}"), warehouse, tmp, variables, 300)


def test_a_giant_profile_stops_the_run(first: tuple[Path, Path], tmp_path: Path) -> None:
    # every profile has a user id and one email; a cap of one identifier makes each a "giant"
    result = _gate(first[1], tmp_path, "identity_profile_size", {"identity_max_profile_identifiers": 1})
    assert result.returncode != 0
    assert "FAIL 6 identity_profile_size_identity_graph" in result.stdout, result.stdout


def test_a_rise_in_quarantine_only_warns(first: tuple[Path, Path], tmp_path: Path) -> None:
    result = _gate(first[1], tmp_path, "identity_quarantined_share", {"identity_max_quarantined_share": -1})
    assert result.returncode == 0, result.stdout
    assert "WARN 1 identity_quarantined_share_identity_graph" in result.stdout, result.stdout
