"""Billing facts (dbt_project/models/marts/profile_billing, account_status, customer_profiles), built by
real dbt on a real DuckDB file.

Once per module, a few people with hand-made Stripe (and Salesforce) raw tables, shaped as the dlt
sources write them, then one `dbt build` of customer_profiles and account_status:

* mixed: one person paying 100 USD and 100 EUR a month (two Stripe customers). Currencies are never
  added together: MRR is per currency, and the person's (and their account's) single MRR is unknown.
* trial / trial_canceled: a subscription still in its trial, and one canceled before its trial
  ended. Neither ever billed, so neither makes anyone a customer (no paying_since, no
  became_customer_at).
* after_trial: a trial that turned into a paid subscription: paying since the trial ended.
* invoiced: a paid invoice dates the first payment.
"""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp_assets.dbt_cli import run_dbt
from cdp_assets_tests.dbt.people import at, identify, load_lines, query_rows, unix

SOURCE_ID = "2Gbilling00000000000000001"
USERS = ["mixed", "trial", "trial_canceled", "after_trial", "invoiced"]


DAY = 24
CUSTOMERS = [
    # (id, email, user_id, currency)
    ("cus_mixed_usd", "mixed@acme.io", "mixed", "usd"),
    ("cus_mixed_eur", "mixed@acme.io", None, "eur"),
    ("cus_trial", "trial@acme.io", "trial", "usd"),
    ("cus_trial_canceled", "trial_canceled@acme.io", "trial_canceled", "usd"),
    ("cus_after_trial", "after_trial@acme.io", "after_trial", "usd"),
    ("cus_invoiced", "invoiced@acme.io", "invoiced", "usd"),
]
SUBSCRIPTIONS = [
    # (id, customer, status, currency, start, trial_start, trial_end, canceled_at, ended_at)
    ("sub_usd", "cus_mixed_usd", "active", "usd", unix(1), None, None, None, None),
    ("sub_eur", "cus_mixed_eur", "active", "eur", unix(1), None, None, None, None),
    ("sub_trial", "cus_trial", "trialing", "usd", unix(1), unix(1), unix(14 * DAY), None, None),
    (
        "sub_trial_canceled",
        "cus_trial_canceled",
        "canceled",
        "usd",
        unix(1),
        unix(1),
        unix(14 * DAY),
        unix(5 * DAY),
        unix(5 * DAY),
    ),
    ("sub_after_trial", "cus_after_trial", "active", "usd", unix(1), unix(1), unix(14 * DAY), None, None),
    ("sub_invoiced", "cus_invoiced", "active", "usd", unix(1), None, None, None, None),
]
ITEMS = [(f"si_{s[0]}", s[0], s[3], 10000) for s in SUBSCRIPTIONS]  # 100.00 a month each


def _write_raw(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw_stripe")
        con.execute(
            "create table raw_stripe.customers (id varchar, created bigint, email varchar, "
            "metadata__user_id varchar, currency varchar)"
        )
        con.executemany(
            "insert into raw_stripe.customers values (?, ?, ?, ?, ?)", [(c[0], unix(0), *c[1:]) for c in CUSTOMERS]
        )
        con.execute(
            "create table raw_stripe.subscriptions (id varchar, created bigint, customer varchar, status varchar, "
            "currency varchar, metadata__plan varchar, start_date bigint, trial_start bigint, trial_end bigint, "
            "canceled_at bigint, ended_at bigint)"
        )
        con.executemany(
            "insert into raw_stripe.subscriptions values (?, ?, ?, ?, ?, 'pro', ?, ?, ?, ?, ?)",
            [(s[0], s[4], *s[1:]) for s in SUBSCRIPTIONS],
        )
        con.execute(
            "create table raw_stripe.subscriptions__items__data (id varchar, created bigint, subscription varchar, "
            "price__id varchar, price__currency varchar, price__unit_amount bigint, "
            "price__recurring__interval varchar, price__recurring__interval_count bigint, quantity bigint)"
        )
        con.executemany(
            "insert into raw_stripe.subscriptions__items__data values (?, ?, ?, 'price', ?, ?, 'month', 1, 1)",
            [(i[0], unix(1), *i[1:]) for i in ITEMS],
        )
        con.execute(
            "create table raw_stripe.invoices (id varchar, created bigint, customer varchar, subscription varchar, "
            "status varchar, currency varchar, amount_due bigint, amount_paid bigint, "
            "status_transitions__paid_at bigint)"
        )
        con.execute(
            "insert into raw_stripe.invoices values "
            "('in_1', ?, 'cus_invoiced', 'sub_invoiced', 'paid', 'usd', 10000, 10000, ?)",
            [unix(2), unix(3)],
        )
        # one Salesforce account whose two people pay in two currencies
        con.execute("create schema raw_salesforce")
        con.execute(
            "create table raw_salesforce.account (id varchar, is_deleted boolean, name varchar, type varchar, "
            "created_date timestamptz)"
        )
        con.execute("insert into raw_salesforce.account values ('001MIX', false, 'Mix', 'Prospect', ?)", [at(0)])
        con.execute(
            "create table raw_salesforce.contact (id varchar, is_deleted boolean, email varchar, account_id varchar, "
            "created_date timestamptz, last_modified_date timestamptz)"
        )
        con.executemany(
            "insert into raw_salesforce.contact values (?, false, ?, '001MIX', ?, ?)",
            [("003MIXA", "after_trial@acme.io", at(0), at(0)), ("003MIXE", "mixed@acme.io", at(0), at(0))],
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("billing")
    warehouse = tmp / "warehouse.duckdb"
    _write_raw(warehouse)
    load_lines(warehouse, tmp / "landing", [identify(u, 0, email=f"{u}@acme.io") for u in USERS], SOURCE_ID)
    result: subprocess.CompletedProcess = run_dbt(
        ("build", "--select", "+customer_profiles", "+account_status", "--indirect-selection", "cautious"),
        warehouse,
        tmp,
        None,
        timeout=300,
    )
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    return warehouse


def profiles(warehouse: Path) -> dict[str, dict[str, Any]]:
    return {
        r["user_id"]: r
        for r in query_rows(
            warehouse,
            "select p.*, b.paying_since from marts.customer_profiles p "
            "left join marts.profile_billing b using (profile_id)",
        )
    }


def test_currencies_are_never_added_together(built: Path) -> None:
    mixed = profiles(built)["mixed"]
    assert mixed["mrr"] is None  # not 200
    assert (mixed["mrr_currency"], mixed["mrr_by_currency"]) == ("MIXED", "EUR 100.00, USD 100.00")
    assert mixed["is_paying"] and mixed["is_customer"]
    one = profiles(built)["invoiced"]
    assert (one["mrr"], one["mrr_currency"], one["mrr_by_currency"]) == (Decimal("100.00"), "USD", "USD 100.00")
    (account,) = query_rows(
        built, "select mrr, mrr_currency, is_paying from marts.account_status where account_id = '001MIX'"
    )
    assert account == {"mrr": None, "mrr_currency": "MIXED", "is_paying": True}


def test_a_trial_that_never_billed_makes_no_customer(built: Path) -> None:
    found = profiles(built)
    for user in ("trial", "trial_canceled"):
        assert (found[user]["paying_since"], found[user]["became_customer_at"], found[user]["is_customer"]) == (
            None,
            None,
            False,
        ), user


def test_paying_since_is_the_first_billing(built: Path) -> None:
    found = profiles(built)
    assert found["after_trial"]["paying_since"] == at(14 * DAY)  # when the trial ended, not when it started
    assert found["invoiced"]["paying_since"] == at(3)  # the first paid invoice
    assert found["mixed"]["paying_since"] == at(1)  # no trial, no invoice: from its start
