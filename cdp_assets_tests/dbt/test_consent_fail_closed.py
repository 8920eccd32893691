"""Consent fails closed (reference §3.4 step 3, §4.3 rules 1, 3, 8), built by real dbt on a real DuckDB file.

Once per module, a few people are written the way the real pipeline leaves them (events through the
real loader; Customer.io and Salesforce raw tables as the dlt sources write them), then one `dbt build`
of the marketing feeds and everything they need runs as a subprocess, tests included:

* loyal: one user with 101 devices (anonymous ids) who unsubscribed. A person's own devices are no
  sign of a shared identifier: the user id must not be quarantined (it was, under one cap for every
  pair, and the opt-out then reached no profile, so the address was synced).
* qa hub: a hard-coded QA user id identified with 101 addresses (a real hub, quarantined) that
  unsubscribed. The opt-out must still reach every address it was seen with.
* two addresses: opted out on the old address in Customer.io, then an explicit opt-in on a new
  address through a form. Consent is per contact point: the old address must never be sent, though
  the profile is opted in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp_assets.dbt_cli import run_dbt
from cdp_assets_tests.dbt.people import at, identify, load_lines, query_rows, track, unix

SOURCE_ID = "2Gfailclosed0000000000001"
DEVICES = 101  # one over the project's default cap (identity_max_links_per_type)
QA_ADDRESSES = [f"qa.tester{i}@acme.io" for i in range(101)]
SELECT = ("+sync_customerio_people", "+sync_customerio_suppressions", "+sync_salesforce_leads")
SELECT += ("+audience_signed_up_no_source",)


EVENTS: list[dict] = [
    identify("loyal-u", 0, "loyal-a0", email="loyal@acme.io"),
    *(track("loyal-u", "page_viewed", 1 + i / 100, f"loyal-a{i}") for i in range(1, DEVICES + 1)),
    track("loyal-u", "email_unsubscribed", 5, channel="email"),
    *(identify("qa-hub", 0, email=address) for address in QA_ADDRESSES),
    track("qa-hub", "email_unsubscribed", 1, channel="email"),
    identify("two-u", 0, email="two.old@acme.io"),
    track("two-u", "signed_up", 0),
    track("two-u", "form_submitted", 2, traits={"email": "two.new@acme.io", "email_opt_in": True}),
    # as two-u, but the old address's opt-out is in Salesforce: Customer.io does not know it yet
    identify("three-u", 0, email="three.old@acme.io"),
    track("three-u", "form_submitted", 2, traits={"email": "three.new@acme.io", "email_opt_in": True}),
]


def _write_raw_saas(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw_customerio")
        con.execute(
            "create table raw_customerio.customers (id varchar, cio_id varchar, email varchar, "
            "unsubscribed boolean, unsubscribed_at bigint)"
        )
        con.executemany(
            "insert into raw_customerio.customers values (?, ?, ?, ?, ?)",
            [
                ("loyal-u", "cio_loyal", "loyal@acme.io", False, None),
                ("two-u", "cio_two", "two.old@acme.io", True, unix(1)),
                ("three-u", "cio_three", "three.old@acme.io", False, None),
            ],
        )
        con.execute(
            "create table raw_customerio.unsubscribes (id varchar, cio_id varchar, timestamp bigint, "
            "unsubscribed boolean, customer_id varchar, email varchar)"
        )
        con.execute(
            "insert into raw_customerio.unsubscribes values "
            "('act_two', 'cio_two', ?, true, 'two-u', 'two.old@acme.io')",
            [unix(1)],
        )
        con.execute("create schema raw_salesforce")
        con.execute(
            "create table raw_salesforce.lead (id varchar, is_deleted boolean, email varchar, last_name varchar, "
            "company varchar, is_converted boolean, created_date timestamptz, last_modified_date timestamptz, "
            "has_opted_out_of_email boolean)"
        )
        con.execute(
            "insert into raw_salesforce.lead values "
            "('00QLOY', false, 'loyal@acme.io', 'Loy', 'Acme', false, ?, ?, false), "
            "('00QTHREE', false, 'three.old@acme.io', 'Three', 'Acme', false, ?, ?, true)",
            [at(0), at(0), at(0), at(1)],
        )


def dbt(tmp: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    return run_dbt(args, warehouse, tmp, {"audience_as_of": at(24 * 30).isoformat()}, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fail_closed")
    warehouse = tmp / "warehouse.duckdb"
    _write_raw_saas(warehouse)
    load_lines(warehouse, tmp / "landing", EVENTS, SOURCE_ID)
    result = dbt(tmp, warehouse, "build", "--select", *SELECT, "--indirect-selection", "cautious")
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    return warehouse


def synced_emails(warehouse: Path) -> set[str]:
    return {r["email"] for r in query_rows(warehouse, "select email from sync.sync_customerio_people")}


def contact_point(warehouse: Path, email: str) -> dict[str, Any]:
    (row,) = query_rows(
        warehouse, "select * from consent.consent_contact_points where email = ? and channel = 'email'", [email]
    )
    return row


def test_a_users_own_devices_do_not_quarantine_them(built: Path) -> None:
    quarantined = query_rows(built, "select identifier_type, identifier from identity.identity_quarantine")
    assert ("user_id", "loyal-u") not in {(q["identifier_type"], q["identifier"]) for q in quarantined}
    (profile,) = query_rows(
        built,
        "select profile_id from identity.identity_graph where identifier_type = 'user_id' and identifier = 'loyal-u'",
    )
    devices = query_rows(
        built,
        "select count(*) as n from identity.identity_graph where profile_id = ? and identifier_type = 'anonymous_id'",
        [profile["profile_id"]],
    )
    assert devices == [{"n": DEVICES + 1}]


def test_a_heavy_users_opt_out_is_honoured_everywhere(built: Path) -> None:
    assert "loyal@acme.io" not in synced_emails(built)
    assert contact_point(built, "loyal@acme.io")["status"] == "opted_out"
    suppressions = query_rows(
        built, "select id, action from sync.sync_customerio_suppressions where email = 'loyal@acme.io'"
    )
    assert suppressions == [{"id": "loyal-u", "action": "unsubscribe"}]
    lead = query_rows(built, "select has_opted_out_of_email from sync.sync_salesforce_leads where id = '00QLOY'")
    assert lead == [{"has_opted_out_of_email": True}]


def test_a_quarantined_identifiers_opt_out_still_reaches_its_addresses(built: Path) -> None:
    quarantined = query_rows(
        built,
        "select identifier_type, identifier, linked_identifier_type from identity.identity_quarantine "
        "where identifier = 'qa-hub'",
    )
    assert quarantined == [{"identifier_type": "user_id", "identifier": "qa-hub", "linked_identifier_type": "email"}]
    statuses = query_rows(
        built,
        "select s.status, count(*) as n from consent.consent_status s "
        "join identity.identity_graph g on g.profile_id = s.profile_id "
        "where g.identifier_type = 'email' and g.identifier like 'qa.tester%' and s.channel = 'email' group by 1",
    )
    assert statuses == [{"status": "opted_out", "n": len(QA_ADDRESSES)}]
    assert not {e for e in synced_emails(built) if e.startswith("qa.tester")}
    assert {contact_point(built, e)["status"] for e in QA_ADDRESSES} == {"opted_out"}


def test_an_opt_out_on_one_address_is_not_lifted_by_an_opt_in_on_another(built: Path) -> None:
    old, new = contact_point(built, "two.old@acme.io"), contact_point(built, "two.new@acme.io")
    assert (old["status"], old["eligible"], old["source"]) == ("opted_out", False, "customerio")
    assert (new["status"], new["eligible"]) == ("opted_in", True)
    assert old["profile_id"] == new["profile_id"]
    # the profile as a whole was opted in later (on the new address) ...
    (profile,) = query_rows(
        built,
        "select primary_email, email_consent_status, primary_email_consent_status, email_eligible "
        "from marts.customer_profiles where user_id = 'two-u'",
    )
    assert profile == {
        "primary_email": "two.old@acme.io",
        "email_consent_status": "opted_in",
        "primary_email_consent_status": "opted_out",
        "email_eligible": False,
    }
    # ... yet neither the people feed nor an audience sends the opted-out address
    assert "two.old@acme.io" not in synced_emails(built)
    audience = query_rows(built, "select email from audiences.audience_signed_up_no_source")
    assert "two.old@acme.io" not in {r["email"] for r in audience}


def test_the_payload_guard_catches_an_opted_out_address(built: Path, tmp_path: Path) -> None:
    """only_eligible_profiles re-asserts consent on the address in the final payload (rule 8): the
    two-address person's profile is opted in, so only the address check can catch their old address."""
    compiled = built.parent / "dbt_target" / "compiled" / "cdp" / "models" / "sync" / "_sync.yml"
    (query,) = list(compiled.glob("only_eligible_profiles_sync_cu*.sql"))
    warehouse = tmp_path / built.name  # the compiled SQL names the database by the file name
    shutil.copy(built, warehouse)
    (profile,) = query_rows(warehouse, "select profile_id from marts.customer_profiles where user_id = 'two-u'")
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute(query.read_text()).fetchall() == []
        con.execute(
            "insert into sync.sync_customerio_people (id, email, profile_id) values ('two-u', 'two.old@acme.io', ?)",
            [profile["profile_id"]],
        )
        failures = con.execute(query.read_text()).fetchall()
    assert [row[2] for row in failures] == ["contact point two.old@acme.io"]


def test_an_address_opted_out_elsewhere_is_unsubscribed_in_customerio(built: Path) -> None:
    """The profile is opted in (on its new address) and Customer.io has its old, opted-out address:
    the people feed leaves the person out, so the suppression feed must tell Customer.io (rule 8)."""
    assert contact_point(built, "three.old@acme.io")["status"] == "opted_out"
    assert "three.old@acme.io" not in synced_emails(built)
    rows = query_rows(
        built,
        "select id, action, consent_status, consent_source from sync.sync_customerio_suppressions where id = 'three-u'",
    )
    assert rows == [
        {"id": "three-u", "action": "unsubscribe", "consent_status": "opted_out", "consent_source": "salesforce"}
    ]
