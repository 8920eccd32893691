"""Shared devices are attributed by visit (identity_device_visits, reference §3.4 step 5), built by real
dbt on a real DuckDB file.

One family laptop (one anonymous id) that Alice and Bob both log in on is quarantined: identity never
merges two accounts. Its events are cut into visits (30 minutes of silence, or a new SDK session),
and a visit with one person's login is that person's, so the anonymous events in it count as theirs:

* visit 1 (hours 0-0.2): Alice browses, logs in, later asks for a quote without her user id (her
  session token lapsed): Alice's quote.
* visit 2 (hour 5): someone creates a source, nobody logs in: no one's.
* visit 3 (hours 10-10.1): someone asks for a quote, then Bob logs in: Bob's quote.
* visit 4 (hours 20-20.2): Alice and Bob both log in, then a sign-up without a user id: no one's.
* visits 5 and 6 (hour 30): Alice logs in; three minutes later a new SDK session on the laptop signs
  up anonymously: the new session is another visit, with no login, so no one's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cdp_assets.dbt_cli import run_dbt
from cdp_assets_tests.dbt.people import at, identify, load_lines, query_rows, track

SOURCE_ID = "2Gshareddevice00000000001"
LAPTOP = "family-laptop"


def _in_session(line: dict, session_id: int) -> dict:
    line["context"]["sessionId"] = session_id
    return line


LINES = [
    track(None, "product_viewed", 0.0, anonymous_id=LAPTOP),
    identify("alice", 0.1, anonymous_id=LAPTOP, email="alice@acme.io"),
    track(None, "enterprise_quote_requested", 0.2, anonymous_id=LAPTOP),
    track(None, "source_created", 5.0, anonymous_id=LAPTOP),
    track(None, "enterprise_quote_requested", 10.0, anonymous_id=LAPTOP),
    identify("bob", 10.1, anonymous_id=LAPTOP, email="bob@acme.io"),
    identify("alice", 20.0, anonymous_id=LAPTOP),
    identify("bob", 20.1, anonymous_id=LAPTOP),
    track(None, "signed_up", 20.2, anonymous_id=LAPTOP),
    _in_session(identify("alice", 30.0, anonymous_id=LAPTOP), 1),
    _in_session(track(None, "signed_up", 30.05, anonymous_id=LAPTOP), 2),
    # Alice on her own phone: a device of one person stays hers, as before
    track(None, "source_created", 40.0, anonymous_id="alice-phone"),
    identify("alice", 40.1, anonymous_id="alice-phone"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("shared_devices")
    warehouse = tmp / "warehouse.duckdb"
    load_lines(warehouse, tmp / "landing", LINES, SOURCE_ID)
    result: subprocess.CompletedProcess = run_dbt(
        ("build", "--select", "+customer_profiles", "--indirect-selection", "cautious"), warehouse, tmp, None, 300
    )
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    return warehouse


def test_the_shared_laptop_merges_no_one(built: Path) -> None:
    quarantined = query_rows(built, "select identifier_type, identifier from identity.identity_quarantine")
    assert {(r["identifier_type"], r["identifier"]) for r in quarantined} == {("anonymous_id", LAPTOP)}
    profiles = query_rows(built, "select user_id, profile_id from marts.customer_profiles where user_id is not null")
    assert len({r["profile_id"] for r in profiles}) == 2


def test_visits_and_whose_they_are(built: Path) -> None:
    visits = query_rows(
        built,
        "select v.visit_number, v.started_at, v.ended_at, v.events, v.anonymous_events, v.user_ids, v.user_id, "
        "v.unattributed_reason, v.profile_id = g.profile_id as is_users_profile "
        "from identity.identity_device_visits v "
        "left join identity.identity_graph g on g.identifier_type = 'user_id' and g.identifier = v.user_id "
        "order by v.visit_number",
    )
    assert [
        (v["visit_number"], v["started_at"], v["ended_at"], v["events"], v["anonymous_events"], v["user_ids"])
        for v in visits
    ] == [
        (1, at(0.0), at(0.2), 3, 2, 1),
        (2, at(5.0), at(5.0), 1, 1, 0),
        (3, at(10.0), at(10.1), 2, 1, 1),
        (4, at(20.0), at(20.2), 3, 1, 2),
        (5, at(30.0), at(30.0), 1, 0, 1),
        (6, at(30.05), at(30.05), 1, 1, 0),
    ]
    assert [(v["user_id"], v["unattributed_reason"], v["is_users_profile"]) for v in visits] == [
        ("alice", None, True),
        (None, "no_login", None),
        ("bob", None, True),
        (None, "several_users", None),
        ("alice", None, True),
        (None, "no_login", None),
    ]


def test_a_visits_anonymous_milestones_are_its_owners(built: Path) -> None:
    found = {
        r["user_id"]: r
        for r in query_rows(
            built,
            "select user_id, enterprise_quote_requested_at, signed_up_at, first_source_created_at, sources_created "
            "from marts.customer_profiles where user_id is not null",
        )
    }
    assert found["alice"]["enterprise_quote_requested_at"] == at(0.2)
    assert found["bob"]["enterprise_quote_requested_at"] == at(10.0)
    # the sign-ups were in visits with two people, or nobody, logged in: nobody's
    assert found["alice"]["signed_up_at"] is None and found["bob"]["signed_up_at"] is None
    # the source created on a visit without a login is nobody's; the one on Alice's phone is hers
    assert (found["alice"]["first_source_created_at"], found["alice"]["sources_created"]) == (at(40.0), 1)
    assert (found["bob"]["first_source_created_at"], found["bob"]["sources_created"]) == (None, 0)


def test_the_gap_is_a_setting(built: Path, tmp_path: Path) -> None:
    """With a gap of 6 hours, hours 0 to 10.1 are one visit of two people: the quotes are no one's."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built, warehouse)
    result = run_dbt(
        ("run", "--select", "identity_device_visits", "customer_profiles"),
        warehouse,
        tmp_path,
        {"identity_visit_gap_minutes": 6 * 60},
        300,
    )
    assert result.returncode == 0, f"dbt run failed:\n{result.stdout}\n{result.stderr}"
    first = query_rows(
        warehouse,
        "select started_at, ended_at, unattributed_reason from identity.identity_device_visits where visit_number = 1",
    )
    assert first == [{"started_at": at(0), "ended_at": at(10.1), "unattributed_reason": "several_users"}]
    quotes = query_rows(
        warehouse,
        "select count(enterprise_quote_requested_at) as n from marts.customer_profiles where user_id is not null",
    )
    assert quotes == [{"n": 0}]
