"""The SaaS staging models (dbt_project/models/staging/<source>/), built by real dbt on real extracts.

Once per module, the five dlt sources run against their stand-ins on 127.0.0.1 (the real client
libraries, real dlt) into one DuckDB file, after a few records the staging models must clean up are
planted in the stand-ins (mixed-case emails, a deleted lead). A test that builds runs one `dbt build`
of the SaaS staging folders as a subprocess, on its own copy of that file or on a hand-made partial
raw schema, with artifacts and logs under tmp_path.
"""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
import yaml

from cdp_assets.dbt_cli import run_dbt
from cdp_assets.sandbox.customerio import CustomerIOSandbox
from cdp_assets.sandbox.facebook import FacebookSandbox
from cdp_assets.sandbox.google_ads import GoogleAdsSandbox, GoogleAdsSandboxServer
from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.salesforce import SalesforceSandbox
from cdp_assets.sandbox.stripe import StripeSandbox
from cdp_assets.sandbox.world import build_world
from cdp_assets.sources.customerio import CustomerIOConfig, customerio_source
from cdp_assets.sources.facebook_ads import FacebookAdsConfig, facebook_ads_source
from cdp_assets.sources.google_ads import GoogleAdsConfig, google_ads_source
from cdp_assets.sources.salesforce import SalesforceConfig, salesforce_source
from cdp_assets.sources.stripe import StripeConfig, stripe_source

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
STAGING_DIR = DBT_PROJECT_DIR / "models" / "staging"
SAAS_SOURCES = ("salesforce", "stripe", "google_ads", "facebook_ads", "customerio")
SELECT = [f"staging.{name}" for name in SAAS_SOURCES]  # the SaaS folders of models/staging
SAAS_MODELS = {path.stem for name in SAAS_SOURCES for path in (STAGING_DIR / name).glob("stg_*.sql")}

# What makes a row of each model unique.
KEYS: dict[str, tuple[str, ...]] = {
    "stg_salesforce__leads": ("lead_id",),
    "stg_salesforce__contacts": ("contact_id",),
    "stg_salesforce__accounts": ("account_id",),
    "stg_salesforce__opportunities": ("opportunity_id",),
    "stg_salesforce__users": ("user_id",),
    "stg_salesforce__campaigns": ("campaign_id",),
    "stg_salesforce__campaign_members": ("campaign_member_id",),
    "stg_salesforce__lead_history": ("lead_history_id",),
    "stg_salesforce__opportunity_field_history": ("opportunity_field_history_id",),
    "stg_salesforce__deleted_people": ("record_id",),
    "stg_stripe__customers": ("customer_id",),
    "stg_stripe__subscriptions": ("subscription_id",),
    "stg_stripe__subscription_items": ("subscription_item_id",),
    "stg_stripe__invoices": ("invoice_id",),
    "stg_stripe__charges": ("charge_id",),
    "stg_stripe__prices": ("price_id",),
    "stg_stripe__products": ("product_id",),
    "stg_google_ads__campaigns": ("campaign_id",),
    "stg_google_ads__ad_groups": ("ad_group_id",),
    "stg_google_ads__campaign_metrics": ("customer_id", "campaign_id", "report_date"),
    "stg_facebook_ads__campaigns": ("campaign_id",),
    "stg_facebook_ads__adsets": ("adset_id",),
    "stg_facebook_ads__ads": ("ad_id",),
    "stg_facebook_ads__insights": ("ad_id", "report_date"),
    "stg_facebook_ads__insight_actions": ("ad_id", "report_date", "action_type"),
    "stg_customerio__customers": ("cio_id",),
    "stg_customerio__unsubscribes": ("activity_id",),
    "stg_customerio__suppressions": ("suppression_type", "email"),
    "stg_customerio__optouts": ("cio_id", "channel", "sender"),
    "stg_customerio__messages": ("message_id",),
    "stg_customerio__campaigns": ("campaign_id",),
}

# Records planted in the stand-ins before the extract.
SF_MIXED_CASE_EMAIL = "Mixed.Case@Example.COM"
STRIPE_MIXED_CASE_EMAIL = "  Jane.Doe@Example.COM "
CIO_MIXED_CASE_EMAIL = "Ann.Example@Example.COM"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", None}


# ------------------------------------------------------------------------------------------ helpers


def _dbt_build(tmp_path: Path, warehouse: Path) -> dict[str, str]:
    """`dbt build` of the SaaS staging folders; returns {unique_id: status} from run_results.json."""
    result = run_dbt(["build", "--select", *SELECT], warehouse, tmp_path, timeout=300)
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    run_results = json.loads((tmp_path / "dbt_target" / "run_results.json").read_text())
    return {entry["unique_id"]: entry["status"] for entry in run_results["results"]}


def _assert_built(statuses: dict[str, str]) -> None:
    """Every SaaS staging model built; no dbt test failed (a warn-severity test may warn)."""
    models = {uid.split(".")[-1]: status for uid, status in statuses.items() if uid.startswith("model.")}
    assert models == dict.fromkeys(SAAS_MODELS, "success")
    tests = {uid: status for uid, status in statuses.items() if uid.startswith("test.")}
    assert len(tests) > len(SAAS_MODELS)
    assert {uid: s for uid, s in tests.items() if s not in ("pass", "warn")} == {}


def _rows(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _scalar(warehouse: Path, sql: str, params: list[Any] | None = None) -> Any:
    (row,) = _rows(warehouse, sql, params)
    (value,) = row.values()
    return value


def _views(warehouse: Path) -> dict[str, tuple[str, str]]:
    """SaaS staging relations: name -> (schema, type)."""
    rows = _rows(
        warehouse,
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_name like 'stg\\_%\\_\\_%' escape '\\'",
    )
    return {r["table_name"]: (r["table_schema"], r["table_type"]) for r in rows}


def _columns(warehouse: Path, model: str) -> dict[str, str]:
    """A staging model's columns: name -> DuckDB type."""
    rows = _rows(
        warehouse,
        "select column_name, data_type from information_schema.columns where table_schema = 'staging' "
        "and table_name = ? order by ordinal_position",
        [model],
    )
    return {r["column_name"]: r["data_type"] for r in rows}


# ------------------------------------------------------------------------------------------ extract


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file holding the five raw schemas, as the dlt sources write them from the stand-ins."""
    root = tmp_path_factory.mktemp("saas_extract")
    warehouse = root / "warehouse.duckdb"
    real_getaddrinfo = socket.getaddrinfo
    refused: list[Any] = []

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            refused.append(host)
            raise OSError(f"test guard: no network access to {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLT_DATA_DIR", str(root / "dlt"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        mp.setattr(socket, "getaddrinfo", local_only)
        _extract_all(warehouse, root / "pipelines")
    assert refused == [], f"an extract tried to leave 127.0.0.1: {refused}"
    return warehouse


def _extract_all(warehouse: Path, pipelines_dir: Path) -> None:
    def run(name: str, source: Any) -> None:
        pipeline = dlt.pipeline(
            pipeline_name=f"saas_staging_{name}",
            destination=dlt.destinations.duckdb(str(warehouse)),
            dataset_name=f"raw_{name}",
            pipelines_dir=str(pipelines_dir),
        )
        pipeline.run(source).raise_on_failed_jobs()

    world = build_world(seed=7, people=150, companies=24)

    salesforce = SalesforceSandbox(world)
    salesforce.add_record("Lead", LastName="Case", Company="Mixed Co", Email=SF_MIXED_CASE_EMAIL)
    gone = salesforce.add_record("Lead", LastName="Gone", Company="Deleted Co", Email="gone@example.com")
    salesforce.delete_record("Lead", gone)
    with SandboxServer(salesforce) as server:
        config = SalesforceConfig.for_sandbox(server.url, backoff_seconds=0.05, rate_per_second=1000)
        run("salesforce", salesforce_source(config))

    stripe = StripeSandbox(world)
    stripe.add_customer(STRIPE_MIXED_CASE_EMAIL, name="Jane Doe", user_id="usr_mixed_case")
    with SandboxServer(stripe) as server:
        run("stripe", stripe_source(StripeConfig.for_sandbox(server.url)))

    customerio = CustomerIOSandbox(world)
    customerio.identify("usr_mixed_case", email=CIO_MIXED_CASE_EMAIL, first_name="Ann")
    with SandboxServer(customerio) as server:
        run("customerio", customerio_source(CustomerIOConfig.for_sandbox(server.url)))

    with SandboxServer(FacebookSandbox(seed=7)) as server:
        run("facebook_ads", facebook_ads_source(FacebookAdsConfig.for_sandbox(server.url)))

    with GoogleAdsSandboxServer(GoogleAdsSandbox(seed=7)) as server:
        run("google_ads", google_ads_source(GoogleAdsConfig.for_sandbox(server.port)))


# ---------------------------------------------------------------------------------------- the tests


def test_every_source_table_is_keyed_by_the_dlt_table_it_reads(extracted: Path) -> None:
    """`meta.dagster.asset_key` of every SaaS source table is ["<source>", "<dlt table>"]: a table the
    extract wrote, named like the dlt resource that wrote it, and every resource has its source table."""
    declared: dict[str, dict[str, Any]] = {}
    for path in sorted((DBT_PROJECT_DIR / "models").rglob("*.yml")):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources", []):
            if source["name"] in SAAS_SOURCES:
                assert source["name"] not in declared, f"source {source['name']} declared twice"
                declared[source["name"]] = source
    assert set(declared) == set(SAAS_SOURCES)

    loaded: dict[str, set[str]] = {name: set() for name in SAAS_SOURCES}
    for row in _rows(extracted, "select table_schema, table_name from information_schema.tables"):
        name = row["table_schema"].removeprefix("raw_")
        if name in loaded and not row["table_name"].startswith("_dlt"):
            loaded[name].add(row["table_name"])
    resources = {
        "salesforce": salesforce_source(SalesforceConfig.for_sandbox("http://127.0.0.1:9")).resources,
        "stripe": stripe_source(StripeConfig.for_sandbox("http://127.0.0.1:9")).resources,
        "google_ads": google_ads_source(GoogleAdsConfig.for_sandbox(9)).resources,
        "facebook_ads": facebook_ads_source(FacebookAdsConfig.for_sandbox("http://127.0.0.1:9")).resources,
        "customerio": customerio_source(CustomerIOConfig.for_sandbox("http://127.0.0.1:9")).resources,
    }

    keys: list[tuple[str, ...]] = []
    for name, source in declared.items():
        assert source["schema"] == f"raw_{name}"
        tables = {table["name"]: table for table in source["tables"]}
        for table_name, table in tables.items():
            key = tuple(table["meta"]["dagster"]["asset_key"])
            assert key == (name, table_name), f"{name}.{table_name}: asset key {key}"
            assert table_name in loaded[name], f"{name}.{table_name} is not a table the extract wrote"
            keys.append(key)
        # Every resource is a source table; child tables (`insights__actions`) are read through their parent's.
        assert set(tables) == set(resources[name]), name
        assert {t for t in loaded[name] if "__" not in t} <= set(tables), name
    assert len(keys) == len(set(keys)), "dagster-dbt needs one source per asset key"


def test_staging_builds_on_the_extracts(extracted: Path, tmp_path: Path) -> None:
    assert set(KEYS) == SAAS_MODELS
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(extracted, warehouse)

    statuses = _dbt_build(tmp_path, warehouse)

    _assert_built(statuses)
    assert _views(warehouse) == dict.fromkeys(SAAS_MODELS, ("staging", "VIEW"))
    for model, key in KEYS.items():
        columns = _columns(warehouse, model)
        assert not [c for c in columns if c.startswith("_dlt") or c == "_deleted"], model  # bookkeeping dropped
        counts = _rows(
            warehouse,
            f"select count(*) as n, count(distinct ({', '.join(key)})) as keys, "
            f"count(*) filter (where {' or '.join(f'{k} is null' for k in key)}) as null_keys "
            f"from staging.{model}",
        )[0]
        assert counts["n"] > 0, f"{model} is empty"
        assert counts["keys"] == counts["n"] and counts["null_keys"] == 0, (model, counts)

    # Emails: lower-cased and trimmed everywhere.
    for model in sorted(SAAS_MODELS):
        for column, kind in _columns(warehouse, model).items():
            if kind == "VARCHAR" and (column == "email" or column.endswith("_email")):
                dirty = _scalar(
                    warehouse, f"select count(*) from staging.{model} where {column} <> lower(trim({column}))"
                )
                assert dirty == 0, f"{model}.{column}"
    sf_emails = {r["email"] for r in _rows(warehouse, "select email from staging.stg_salesforce__leads")}
    assert SF_MIXED_CASE_EMAIL.lower() in sf_emails
    (jane,) = _rows(warehouse, "select * from staging.stg_stripe__customers where user_id = 'usr_mixed_case'")
    assert jane["email"] == "jane.doe@example.com"
    (ann,) = _rows(warehouse, "select * from staging.stg_customerio__customers where customer_id = 'usr_mixed_case'")
    assert ann["email"] == "ann.example@example.com" and ann["first_name"] == "Ann"

    # Salesforce: deleted records leave the models and land in stg_salesforce__deleted_people.
    live = _scalar(warehouse, "select count(*) from raw_salesforce.lead where not is_deleted")
    assert _scalar(warehouse, "select count(*) from staging.stg_salesforce__leads") == live
    deleted = _rows(warehouse, "select id, email from raw_salesforce.lead where is_deleted")
    assert "gone@example.com" in {r["email"] for r in deleted}
    kept = _rows(warehouse, "select record_id, record_type from staging.stg_salesforce__deleted_people")
    assert {(r["id"], "lead") for r in deleted} <= {(r["record_id"], r["record_type"]) for r in kept}
    leaked = _scalar(
        warehouse,
        "select count(*) from staging.stg_salesforce__leads where lead_id in "
        "(select id from raw_salesforce.lead where is_deleted)",
    )
    assert leaked == 0

    # Google Ads: cost in currency units, exact; "no end date" is null.
    metrics = _rows(
        warehouse,
        "select m.cost, r.cost_micros from staging.stg_google_ads__campaign_metrics m "
        "join raw_google_ads.campaign_metrics r on m.customer_id = cast(r.customer_id as varchar) "
        "and m.campaign_id = cast(r.campaign_id as varchar) and m.report_date = r.date",
    )
    assert len(metrics) == _scalar(warehouse, "select count(*) from raw_google_ads.campaign_metrics")
    assert all(isinstance(m["cost"], Decimal) and m["cost"] * 1_000_000 == m["cost_micros"] for m in metrics)
    assert any(m["cost"] != int(m["cost"]) for m in metrics)  # really divided, not rounded
    campaigns = _rows(
        warehouse,
        "select c.ends_at, r.end_date_time from staging.stg_google_ads__campaigns c "
        "join raw_google_ads.campaigns r on c.campaign_id = cast(r.id as varchar)",
    )
    assert {c["ends_at"] for c in campaigns if c["end_date_time"].year >= 2037} == {None}
    assert all(c["ends_at"] == c["end_date_time"] for c in campaigns if c["end_date_time"].year < 2037)

    # Stripe: amounts from cents to currency units, currency upper-case, Unix times as UTC timestamps.
    invoices = _rows(
        warehouse,
        "select i.amount_paid, i.total, i.currency, i.created_at, r.amount_paid as cents, r.total as total_cents, "
        "r.created from staging.stg_stripe__invoices i join raw_stripe.invoices r on i.invoice_id = r.id",
    )
    assert invoices and {i["currency"] for i in invoices} == {"USD"}
    assert all(i["amount_paid"] * 100 == i["cents"] and i["total"] * 100 == i["total_cents"] for i in invoices)
    assert all(i["created_at"] == datetime.fromtimestamp(i["created"], UTC) for i in invoices)
    prices = {r["lookup_key"]: r["unit_amount"] for r in _rows(warehouse, "select * from staging.stg_stripe__prices")}
    raw_prices = _rows(warehouse, "select lookup_key, unit_amount from raw_stripe.prices")
    assert {r["lookup_key"]: r["unit_amount"] / Decimal(100) for r in raw_prices} == prices
    charges = _rows(
        warehouse,
        "select c.amount, r.amount as cents from staging.stg_stripe__charges c "
        "join raw_stripe.charges r on c.charge_id = r.id",
    )
    assert charges and all(c["amount"] * 100 == c["cents"] for c in charges)

    # Facebook Ads: budgets from cents, spend as loaded (already currency units).
    budgets = _rows(
        warehouse,
        "select c.daily_budget, r.daily_budget as cents from staging.stg_facebook_ads__campaigns c "
        "join raw_facebook_ads.campaigns r on c.campaign_id = r.id where r.daily_budget is not null",
    )
    assert budgets and all(b["daily_budget"] * 100 == b["cents"] for b in budgets)
    assert _scalar(warehouse, "select sum(spend) from staging.stg_facebook_ads__insights") == _scalar(
        warehouse, "select sum(spend) from raw_facebook_ads.insights"
    )
    assert _scalar(warehouse, "select count(*) from staging.stg_facebook_ads__insight_actions") == _scalar(
        warehouse, "select count(*) from raw_facebook_ads.insights__actions"
    )


def test_staging_builds_on_a_partial_raw_schema(tmp_path: Path) -> None:
    """Tables not extracted yet, fields another org or account lacks: every model still builds (empty,
    or with nulls), and values the stand-ins never produce are converted right."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        for schema in ("raw_salesforce", "raw_stripe", "raw_google_ads", "raw_customerio"):  # no Facebook at all
            con.execute(f"create schema {schema}")
        # A lead table without custom fields or opt-out flags; no contact table yet.
        con.execute(
            "create table raw_salesforce.lead (id varchar, is_deleted boolean, master_record_id varchar, "
            "email varchar, last_name varchar, system_modstamp timestamptz)"
        )
        con.execute(
            "insert into raw_salesforce.lead values "
            "('00Q000000000001AAA', false, null, ' Kept@Example.COM ', 'Kept', '2024-01-02 03:04:05+00'), "
            "('00Q000000000002AAA', true, '00Q000000000001AAA', 'kept@example.com', 'Merged', '2024-01-03 00:00:00+00')"
        )
        # Charges in a zero-decimal and a three-decimal currency, without most optional columns.
        con.execute(
            "create table raw_stripe.charges "
            "(id varchar, created bigint, amount bigint, currency varchar, status varchar)"
        )
        con.execute(
            "insert into raw_stripe.charges values ('ch_jpy', 1704067200, 5000, 'jpy', 'succeeded'), "
            "('ch_kwd', 1704067200, 1500, 'kwd', 'succeeded'), ('ch_usd', 1704067200, 1999, 'usd', 'failed')"
        )
        con.execute(
            "create table raw_google_ads.campaign_metrics (customer_id bigint, campaign_id bigint, date date, "
            "cost_micros bigint)"
        )
        con.execute(
            "insert into raw_google_ads.campaign_metrics values (1234567890, 9007199254740993, '2024-01-01', 1234567)"
        )
        # A person with the email only as an attribute.
        con.execute("create table raw_customerio.customers (id varchar, cio_id varchar, attributes__email varchar)")
        con.execute("insert into raw_customerio.customers values ('usr_1', 'a3000001', ' Bob@X.io ')")

    statuses = _dbt_build(tmp_path, warehouse)

    _assert_built(statuses)
    assert _views(warehouse) == dict.fromkeys(SAAS_MODELS, ("staging", "VIEW"))

    (lead,) = _rows(warehouse, "select * from staging.stg_salesforce__leads")
    assert lead["lead_id"] == "00Q000000000001AAA" and lead["email"] == "kept@example.com"
    assert lead["person_id"] is None and lead["has_opted_out_of_email"] is None and lead["is_converted"] is False
    assert _rows(
        warehouse, "select record_id, record_type, master_record_id from staging.stg_salesforce__deleted_people"
    ) == [{"record_id": "00Q000000000002AAA", "record_type": "lead", "master_record_id": "00Q000000000001AAA"}]

    charges = _rows(
        warehouse, "select charge_id, currency, amount, created_at from staging.stg_stripe__charges order by 1"
    )
    assert [(c["charge_id"], c["currency"], c["amount"]) for c in charges] == [
        ("ch_jpy", "JPY", Decimal("5000")),  # zero-decimal: already whole yen
        ("ch_kwd", "KWD", Decimal("1.5")),  # three-decimal: thousandths
        ("ch_usd", "USD", Decimal("19.99")),
    ]
    assert {c["created_at"] for c in charges} == {datetime(2024, 1, 1, tzinfo=UTC)}

    assert _rows(warehouse, "select * from staging.stg_google_ads__campaign_metrics") == [
        {
            "customer_id": "1234567890",
            "campaign_id": "9007199254740993",  # beyond 2**53: exact as text
            "report_date": date(2024, 1, 1),
            "impressions": None,
            "clicks": None,
            "cost": Decimal("1.234567"),
            "conversions": None,
            "conversions_value": None,
        }
    ]
    assert _rows(warehouse, "select customer_id, email from staging.stg_customerio__customers") == [
        {"customer_id": "usr_1", "email": "bob@x.io"}
    ]
    # Not extracted: empty, with the model's columns.
    assert _scalar(warehouse, "select count(*) from staging.stg_salesforce__contacts") == 0
    assert _scalar(warehouse, "select count(*) from staging.stg_facebook_ads__insight_actions") == 0
    assert "spend" in _columns(warehouse, "stg_facebook_ads__insights")
