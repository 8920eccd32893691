"""Consent precedence (dbt_project/models/consent), built by real dbt on a real DuckDB file.

Once per module: a dozen hand-made people, each one precedence case, are written the way the real
pipeline leaves them (events as RudderStack dump lines through the real loader; Customer.io and
Salesforce raw tables as the dlt sources write them), then one `dbt build` of consent_status and
everything it needs (staging, identity) runs as a subprocess, with one extra consent event switched on
through the `consent_tracks` var (an explicit unsuppress). The tests read consent_status back.
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

SOURCE_ID = "2Gconsent00000000000000001"
CHANNELS = ("email", "sms", "push", "ads")

# The project's consent tracks (dbt_project.yml) plus one this test switches on: adding a consent event
# is a var change. The erasure request is one of the project's own.
CONSENT_TRACKS = {
    "email_unsubscribed": {"channel": "email", "kind": "opt_out"},
    "email_resubscribed": {"channel": "email", "kind": "opt_in", "explicit": True},
    "email_unsuppressed": {"channel": "email", "kind": "unsuppress", "explicit": True},
    "erasure_requested": {"channel": "all", "kind": "erasure", "explicit": True},
}


# ------------------------------------------------------------------------------------------ inputs


# Each person is one case; their ids name it. Customer.io and Salesforce rows are per table.
EVENTS: list[dict] = [
    # out_in: an opt-out, then an explicit, later opt-in
    identify("u_out_in", 0, email="out.in@acme.io"),
    track("u_out_in", "email_unsubscribed", 1, channel="email", reason="too_many_emails", source="preference_center"),
    track("u_out_in", "email_resubscribed", 2, channel="email", source="preference_center"),
    # in_out: an explicit opt-in (the sign-up form's box), then an opt-out
    identify("u_in_out", 0, email="in.out@acme.io", email_opt_in=True),
    track("u_in_out", "email_unsubscribed", 1, channel="email", reason="not_relevant"),
    # merged: opted in on the product account, opted out later in Customer.io on the same email
    identify("u_merged", 0, email="merged@acme.io", email_opt_in=True),
    # bounce: a hard bounce, then an explicit re-subscription: still suppressed
    identify("u_bounce", 0, email="bounce@acme.io"),
    track("u_bounce", "email_resubscribed", 2, channel="email", source="preference_center"),
    # unsuppressed: opted in, bounced, then explicitly unsuppressed: opted in again
    identify("u_unsuppressed", 0, email="unsuppressed@acme.io", email_opt_in=True),
    track("u_unsuppressed", "email_unsuppressed", 2, channel="email"),
    # unknown: nothing said on any channel
    identify("u_unknown", 0, email="unknown@acme.io"),
    # erased: opted in on two channels, asked for erasure, then re-subscribed: erased everywhere
    identify("u_erased", 0, email="erased@acme.io", email_opt_in=True, sms_subscribed=True),
    track("u_erased", "erasure_requested", 1),
    track("u_erased", "email_resubscribed", 2, channel="email"),
    # stop: STOP to texts in Customer.io (undated), later a sign-up box for SMS: still out
    identify("u_stop", 0, email="stop@acme.io"),
    identify("u_stop", 5, sms_subscribed=True, push_subscribed=True),
    # tie: an opt-out and an opt-in at the same moment: the opt-out holds
    identify("u_tie", 0, email="tie@acme.io"),
    track("u_tie", "email_unsubscribed", 1, channel="email"),
    track("u_tie", "email_resubscribed", 1, channel="email"),
    # sticky: the browser repeats an old opt-in trait after the opt-out: not a new opt-in
    identify("u_sticky", 0, "anon-sticky", email="sticky@acme.io", email_opt_in=True),
    track("u_sticky", "email_unsubscribed", 1, "anon-sticky", channel="email"),
    identify("u_sticky", 2, "anon-sticky", email="sticky@acme.io", email_opt_in=True),
    # implicit: opted out, then only the mirrored `unsubscribed: false` trait (not explicit)
    identify("u_implicit", 0, email="implicit@acme.io"),
    track("u_implicit", "email_unsubscribed", 1, channel="email"),
    identify("u_implicit", 2, unsubscribed=False),
    # push_off: push opted in, then switched off in the app
    identify("u_push_off", 0, email="push.off@acme.io", push_subscribed=True),
    identify("u_push_off", 3, push_subscribed=False),
]

CUSTOMERIO_CUSTOMERS = [
    # (id, cio_id, email, unsubscribed, unsubscribed_at)
    ("u_merged", "cio_merged", "merged@acme.io", True, unix(1)),
    ("u_stop", "cio_stop", "stop@acme.io", False, None),
    ("u_bounce", "cio_bounce", "bounce@acme.io", False, None),
]
CUSTOMERIO_UNSUBSCRIBES = [
    # (id, cio_id, timestamp, unsubscribed, customer_id, email)
    ("act_merged", "cio_merged", unix(1), True, "u_merged", "merged@acme.io"),
]
CUSTOMERIO_SUPPRESSIONS = [
    # (type, email, created, reason)
    ("bounces", "bounce@acme.io", unix(1), "550 5.1.1 no such user"),
    ("bounces", "unsuppressed@acme.io", unix(1), "550 5.1.1 no such user"),
]
CUSTOMERIO_OPTOUTS = [("cio_stop", "sms", "u_stop", "+15550100200")]

# Salesforce: a rep set then cleared a lead's email opt-out (cleared is not the person's consent);
# another lead is marked DoNotCall with no history (dated by its last change).
SF_LEADS = [
    # (id, email, has_opted_out_of_email, do_not_call, last_modified)
    ("00Q000000000rep", "rep.cleared@acme.io", False, False, at(2)),
    ("00Q000000000dnc", "do.not.call@acme.io", False, True, at(3)),
]
SF_LEAD_HISTORY = [
    # (id, lead_id, field, old, new, created)
    ("017000000000001", "00Q000000000rep", "HasOptedOutOfEmail", "false", "true", at(1)),
    ("017000000000002", "00Q000000000rep", "HasOptedOutOfEmail", "true", "false", at(2)),
]


def _write_raw_saas(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw_customerio")
        con.execute(
            "create table raw_customerio.customers (id varchar, cio_id varchar, email varchar, "
            "unsubscribed boolean, unsubscribed_at bigint)"
        )
        con.executemany("insert into raw_customerio.customers values (?, ?, ?, ?, ?)", CUSTOMERIO_CUSTOMERS)
        con.execute(
            "create table raw_customerio.unsubscribes (id varchar, cio_id varchar, timestamp bigint, "
            "unsubscribed boolean, customer_id varchar, email varchar)"
        )
        con.executemany("insert into raw_customerio.unsubscribes values (?, ?, ?, ?, ?, ?)", CUSTOMERIO_UNSUBSCRIBES)
        con.execute(
            "create table raw_customerio.suppressions (type varchar, email varchar, created bigint, reason varchar)"
        )
        con.executemany("insert into raw_customerio.suppressions values (?, ?, ?, ?)", CUSTOMERIO_SUPPRESSIONS)
        con.execute(
            'create table raw_customerio.optouts (cio_id varchar, channel varchar, customer_id varchar, "from" varchar)'
        )
        con.executemany("insert into raw_customerio.optouts values (?, ?, ?, ?)", CUSTOMERIO_OPTOUTS)

        con.execute("create schema raw_salesforce")
        con.execute(
            "create table raw_salesforce.lead (id varchar, is_deleted boolean, email varchar, last_name varchar, "
            "company varchar, has_opted_out_of_email boolean, do_not_call boolean, is_converted boolean, "
            "created_date timestamptz, last_modified_date timestamptz, system_modstamp timestamptz)"
        )
        for lead_id, email, opted_out, dnc, modified in SF_LEADS:
            con.execute(
                "insert into raw_salesforce.lead values (?, false, ?, 'Doe', 'Acme', ?, ?, false, ?, ?, ?)",
                [lead_id, email, opted_out, dnc, at(0), modified, modified],
            )
        con.execute(
            "create table raw_salesforce.lead_history (id varchar, is_deleted boolean, lead_id varchar, "
            "field varchar, old_value varchar, new_value varchar, created_by_id varchar, created_date timestamptz)"
        )
        for row in SF_LEAD_HISTORY:
            con.execute(
                "insert into raw_salesforce.lead_history values (?, false, ?, ?, ?, ?, '005000000000001', ?)", row
            )


# --------------------------------------------------------------------------------------------- dbt


def dbt(tmp: Path, warehouse: Path, *args: str, variables: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
    """Run one dbt command on `warehouse` with artifacts and logs under `tmp`."""
    return run_dbt(args, warehouse, tmp, variables, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("consent")
    warehouse = tmp / "warehouse.duckdb"
    _write_raw_saas(warehouse)
    load_lines(warehouse, tmp / "landing", EVENTS, SOURCE_ID)
    # `cautious`: only tests whose every parent is selected (see test_marts_audiences_sync).
    result = dbt(
        tmp,
        warehouse,
        "build",
        "--select",
        "+consent_status",
        "--indirect-selection",
        "cautious",
        variables={"consent_tracks": CONSENT_TRACKS},
    )
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    return warehouse


def status_of(warehouse: Path, identifier_type: str, identifier: str) -> dict[str, dict[str, Any]]:
    """consent_status of the profile an identifier belongs to: {channel: row}."""
    rows = query_rows(
        warehouse,
        "select s.* from consent.consent_status s join identity.identity_graph g on g.profile_id = s.profile_id "
        "where g.identifier_type = ? and g.identifier = ?",
        [identifier_type, identifier],
    )
    assert rows, f"no profile for {identifier_type} {identifier}"
    return {row["channel"]: row for row in rows}


def user(warehouse: Path, user_id: str) -> dict[str, dict[str, Any]]:
    return status_of(warehouse, "user_id", user_id)


# ------------------------------------------------------------------------------------------- tests


def test_one_status_per_profile_and_channel(built: Path) -> None:
    profiles = query_rows(built, "select count(distinct profile_id) as n from identity.identity_graph")[0]["n"]
    counts = query_rows(
        built,
        "select count(*) as n, count(distinct profile_id || channel) as keys, "
        "count(*) filter (where eligible is null) as null_eligible from consent.consent_status",
    )[0]
    assert counts == {"n": profiles * len(CHANNELS), "keys": profiles * len(CHANNELS), "null_eligible": 0}


def test_opt_out_then_later_explicit_opt_in_is_in(built: Path) -> None:
    email = user(built, "u_out_in")["email"]
    assert (email["status"], email["eligible"]) == ("opted_in", True)
    assert email["source"] == "event_stream" and email["updated_at"] == at(2)
    assert email["reason"].startswith("email_resubscribed")


def test_opt_in_then_opt_out_is_out(built: Path) -> None:
    email = user(built, "u_in_out")["email"]
    assert (email["status"], email["eligible"]) == ("opted_out", False)
    assert email["updated_at"] == at(1) and email["reason"] == "email_unsubscribed: not_relevant"


def test_opt_out_on_one_merged_identity_is_out_for_the_profile(built: Path) -> None:
    # The Customer.io unsubscribe names the Customer.io person and the email, never the user id: it
    # reaches the product account's opt-in only through the merged profile.
    named = query_rows(
        built,
        "select distinct identifier_type from consent.consent_events where signal = 'customerio:unsubscribes' "
        "and identifier in ('cio_merged', 'merged@acme.io', 'u_merged')",
    )
    assert {r["identifier_type"] for r in named} == {"customerio_id", "email"}
    by_user, by_cio = user(built, "u_merged"), status_of(built, "customerio_id", "cio_merged")
    assert by_user["email"]["profile_id"] == by_cio["email"]["profile_id"]
    assert (by_user["email"]["status"], by_user["email"]["eligible"]) == ("opted_out", False)
    assert by_user["email"]["source"] == "customerio"


def test_suppression_beats_a_later_opt_in(built: Path) -> None:
    email = user(built, "u_bounce")["email"]
    assert (email["status"], email["eligible"]) == ("suppressed", False)
    assert email["reason"].startswith("bounces") and email["updated_at"] == at(1)


def test_only_an_explicit_unsuppress_lifts_a_suppression(built: Path) -> None:
    # opted in at 0, bounced at 1, unsuppressed at 2: the opt-in stands again
    email = user(built, "u_unsuppressed")["email"]
    assert (email["status"], email["eligible"]) == ("opted_in", True)


def test_unknown_is_eligible_only_where_no_opt_in_is_needed(built: Path) -> None:
    status = user(built, "u_unknown")
    assert {c: (r["status"], r["eligible"], r["needs_opt_in"]) for c, r in status.items()} == {
        "email": ("unknown", True, False),
        "sms": ("unknown", False, True),
        "push": ("unknown", False, True),
        "ads": ("unknown", False, True),
    }


def test_email_needs_an_opt_in_when_the_var_says_so(built: Path, tmp_path: Path) -> None:
    """Which channels need an opt-in is a var: with email among them, unknown is not eligible for email."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built, warehouse)
    variables = {"consent_tracks": CONSENT_TRACKS, "consent_opt_in_channels": list(CHANNELS)}
    result = dbt(tmp_path, warehouse, "run", "--select", "consent_status", variables=variables)
    assert result.returncode == 0, f"dbt run failed:\n{result.stdout}\n{result.stderr}"
    unknown, opted_in = user(warehouse, "u_unknown")["email"], user(warehouse, "u_out_in")["email"]
    assert (unknown["status"], unknown["eligible"], unknown["needs_opt_in"]) == ("unknown", False, True)
    assert (opted_in["status"], opted_in["eligible"]) == ("opted_in", True)


def test_erasure_beats_everything_on_every_channel(built: Path) -> None:
    status = user(built, "u_erased")
    assert {c: (r["status"], r["eligible"]) for c, r in status.items()} == dict.fromkeys(CHANNELS, ("erased", False))


def test_undated_sms_stop_holds_against_a_later_opt_in(built: Path) -> None:
    status = user(built, "u_stop")
    assert (status["sms"]["status"], status["sms"]["eligible"]) == ("opted_out", False)
    assert status["sms"]["updated_at"] is None and status["sms"]["source"] == "customerio"
    assert (status["push"]["status"], status["push"]["eligible"]) == ("opted_in", True)  # other channels untouched


def test_a_tie_keeps_the_opt_out(built: Path) -> None:
    assert user(built, "u_tie")["email"]["status"] == "opted_out"


def test_a_repeated_trait_is_not_a_new_opt_in(built: Path) -> None:
    assert user(built, "u_sticky")["email"]["status"] == "opted_out"
    # the trait counted once, when it first appeared on the device
    opt_ins = query_rows(
        built,
        "select count(distinct consent_event_id) as n from consent.consent_events "
        "where signal = 'trait:email_opt_in' and identifier = 'anon-sticky'",
    )
    assert opt_ins == [{"n": 1}]


def test_an_opt_in_that_is_not_explicit_does_not_reverse(built: Path) -> None:
    email = user(built, "u_implicit")["email"]
    assert (email["status"], email["eligible"]) == ("opted_out", False)
    # a rep clearing Salesforce's flag is not the person's consent either
    email = status_of(built, "salesforce_lead_id", "00Q000000000rep")["email"]
    assert (email["status"], email["source"], email["updated_at"]) == ("opted_out", "salesforce", at(1))


def test_do_not_call_and_app_opt_outs(built: Path) -> None:
    lead = status_of(built, "salesforce_lead_id", "00Q000000000dnc")
    assert (lead["sms"]["status"], lead["sms"]["updated_at"]) == ("opted_out", at(3))
    assert lead["email"]["status"] == "unknown"
    push = user(built, "u_push_off")["push"]
    assert (push["status"], push["updated_at"]) == ("opted_out", at(3))
