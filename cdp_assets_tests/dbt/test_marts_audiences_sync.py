"""Marts, audiences and sync feeds (dbt_project/models/{marts,audiences,sync}), built by real dbt.

Once per module, the way the real pipeline fills a warehouse: the Salesforce, Stripe and Customer.io
dlt sources run against their stand-ins on 127.0.0.1 (a small sandbox world, plus a few planted
people), the event generator writes the same world's journeys as RudderStack dump files with some
planted events, and the real loader loads them. One `dbt build` of the audiences and sync feeds and
everything upstream (staging, identity, consent, marts) runs as a subprocess, as of the end of the
world's history. The tests read the models back and check them against the planted people and the
world's own record of who opted out.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
import sqlglot
import yaml
from sqlglot import exp

from cdp_assets.dbt_cli import run_dbt
from cdp_assets.event_stream.landing import LocalLandingStore, dump_key
from cdp_assets.event_stream.loader import load_events
from cdp_assets.sandbox.customerio import CustomerIOSandbox
from cdp_assets.sandbox.event_generator import generate_events
from cdp_assets.sandbox.http import SandboxServer
from cdp_assets.sandbox.salesforce import SalesforceSandbox
from cdp_assets.sandbox.stripe import StripeSandbox
from cdp_assets.sandbox.world import EPOCH, HISTORY, WORLD_END, World, build_world
from cdp_assets.sources.customerio import CustomerIOConfig, customerio_source
from cdp_assets.sources.salesforce import SalesforceConfig, salesforce_source
from cdp_assets.sources.stripe import StripeConfig, stripe_source
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
SOURCE_ID = "2Gplanted00000000000000001"
AS_OF = WORLD_END  # audiences are built as of the end of the world's history
WORLD = {"seed": 7, "people": 150, "companies": 24}
EVENTS = 20_000  # enough for every person's journey at this world size

AUDIENCES = ("audience_signed_up_no_source", "audience_enterprise_quote_requested", "audience_became_customer")
SYNCS = ("sync_customerio_people", "sync_customerio_suppressions", "sync_salesforce_leads", "sync_salesforce_accounts")


def days_before_end(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


# --------------------------------------------------------------------------------- planted people

# user id -> (email, signed up (days before the end), first source (days after sign-up) or None)
SIGNUPS: dict[str, tuple[str, float, float | None]] = {
    "usr_p_in": ("planted.in@harbor.io", 8, None),  # no source after the window: in
    "usr_p_out": ("planted.out@harbor.io", 8, None),  # same, but opted out on a deleted lead: out
    "usr_p_recent": ("planted.recent@harbor.io", 1, None),  # the window is still open: out
    "usr_p_quick": ("planted.quick@harbor.io", 8, 1),  # a source on day one: out
    "usr_p_late": ("planted.late@harbor.io", 10, 5),  # a source, but after the window: in
    "usr_p_quote": ("planted.quote@harbor.io", 6, 0.5),  # asked for an enterprise quote
    "usr_p_payer": ("planted.payer@harbor.io", 6, 0.5),  # pays for Pro in Stripe
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _server_call(type_: str, user_id: str, moment: datetime, **fields: Any) -> dict:
    stamp = _iso(moment)
    return {
        "type": type_,
        "messageId": str(uuid.uuid4()),
        "userId": user_id,
        "channel": "server",
        "timestamp": stamp,
        "sentAt": stamp,
        "originalTimestamp": stamp,
        "receivedAt": stamp,
        "context": {"library": {"name": "analytics-python", "version": "2.1.9"}, **fields.pop("context", {})},
        **fields,
    }


def planted_events() -> list[dict]:
    lines = []
    for user_id, (email, days, source_after) in SIGNUPS.items():
        signed_up = days_before_end(days)
        traits = {"email": email, "firstName": "Pat", "lastName": user_id[6:].title(), "email_opt_in": True}
        lines.append(_server_call("identify", user_id, signed_up, context={"traits": traits}))
        lines.append(_server_call("track", user_id, signed_up, event="signed_up", properties={"plan": "free"}))
        if source_after is not None:
            moment = signed_up + timedelta(days=source_after)
            lines.append(
                _server_call("track", user_id, moment, event="source_created", properties={"source_type": "Python"})
            )
    quote_at = days_before_end(5)
    lines.append(
        _server_call("track", "usr_p_quote", quote_at, event="enterprise_quote_requested", properties={"seats": 25})
    )
    return lines


def plant_saas(salesforce: SalesforceSandbox, stripe: StripeSandbox, customerio: CustomerIOSandbox) -> None:
    # An opt-out recorded on a Salesforce lead that was then deleted still counts for the person.
    email = SIGNUPS["usr_p_out"][0]
    lead = salesforce.add_record("Lead", LastName="Out", Company="Harbor", Email=email, HasOptedOutOfEmail=True)
    salesforce.delete_record("Lead", lead)
    # Customer.io knows both no-source people, so both would be synced if eligible.
    for user_id in ("usr_p_in", "usr_p_out"):
        customerio.identify(user_id, email=SIGNUPS[user_id][0], first_name="Pat", lifecycle_stage="signed_up")
    # A paying customer: Stripe customer with the user id in its metadata, on Pro.
    customer = stripe.add_customer(SIGNUPS["usr_p_payer"][0], name="Pat Payer", user_id="usr_p_payer")
    stripe.add_subscription(customer["id"], "pro")


# ------------------------------------------------------------------------------------------ build


def _extract(warehouse: Path, pipelines_dir: Path, world: World) -> None:
    def run(name: str, source: Any) -> None:
        pipeline = dlt.pipeline(
            pipeline_name=f"marts_{name}",
            destination=dlt.destinations.duckdb(str(warehouse)),
            dataset_name=f"raw_{name}",
            pipelines_dir=str(pipelines_dir),
        )
        pipeline.run(source).raise_on_failed_jobs()

    salesforce, stripe, customerio = SalesforceSandbox(world), StripeSandbox(world), CustomerIOSandbox(world)
    plant_saas(salesforce, stripe, customerio)
    with SandboxServer(salesforce) as server:
        run(
            "salesforce",
            salesforce_source(SalesforceConfig.for_sandbox(server.url, backoff_seconds=0.05, rate_per_second=1000)),
        )
    with SandboxServer(stripe) as server:
        run("stripe", stripe_source(StripeConfig.for_sandbox(server.url)))
    with SandboxServer(customerio) as server:
        run("customerio", customerio_source(CustomerIOConfig.for_sandbox(server.url)))


def _load_events(warehouse: Path, landing_dir: Path, world: World) -> None:
    store = LocalLandingStore(landing_dir)
    # The world's history mapped one to one onto stream time, as the stand-ins place it.
    generate_events(store, EVENTS, seed=WORLD["seed"], start=EPOCH, span=HISTORY, world=world)
    text = "\n".join(json.dumps(line) for line in planted_events()) + "\n"
    store.put(dump_key(SOURCE_ID, AS_OF, str(uuid.uuid4())), gzip.compress(text.encode(), mtime=0))
    summary = load_events(store, DuckDBWarehouse(warehouse))
    assert summary.balanced and summary.discarded == 0, summary


def dbt(tmp: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    return run_dbt(args, warehouse, tmp, {"audience_as_of": AS_OF.isoformat()}, timeout=300)


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(**WORLD)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    tmp = tmp_path_factory.mktemp("marts")
    warehouse = tmp / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLT_DATA_DIR", str(tmp / "dlt"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        _extract(warehouse, tmp / "pipelines", world)
    _load_events(warehouse, tmp / "landing", world)
    # `cautious`: only tests whose every parent is selected (a SaaS staging model's relationships test
    # to a model outside the selection would run against a view that was never built).
    selection = ("+path:models/audiences", "+path:models/sync")
    result = dbt(tmp, warehouse, "build", "--select", *selection, "--indirect-selection", "cautious")
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    run_results = json.loads((tmp / "dbt_target" / "run_results.json").read_text())
    failed = [r["unique_id"] for r in run_results["results"] if r["status"] not in ("success", "pass")]
    assert failed == [], failed
    return warehouse


def _rows(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _column(warehouse: Path, sql: str, params: list[Any] | None = None) -> set[Any]:
    return {next(iter(row.values())) for row in _rows(warehouse, sql, params)}


def profile_of(warehouse: Path, identifier_type: str, identifier: str) -> str:
    (profile,) = _column(
        warehouse,
        "select profile_id from identity.identity_graph where identifier_type = ? and identifier = ?",
        [identifier_type, identifier],
    )
    return profile


def members(warehouse: Path, audience: str) -> set[str]:
    return _column(warehouse, f"select user_id from audiences.{audience} where user_id is not null")


def world_opted_out(world: World) -> set[str]:
    """Emails of the world's people who, at the end of its history, are opted out of email."""
    return {p.email for p in world.people if p.opted_out("email") and not (p.is_internal or p.is_test)}


# ------------------------------------------------------------------------------------------- tests


def test_one_row_per_profile(built: Path) -> None:
    profiles = _column(built, "select distinct profile_id from identity.identity_graph")
    rows = _rows(built, "select profile_id from marts.customer_profiles")
    assert len(rows) == len(profiles) == len({r["profile_id"] for r in rows})
    assert {r["profile_id"] for r in rows} == profiles
    accounts = _rows(built, "select count(*) as n, count(distinct account_id) as keys from marts.account_status")
    assert accounts == _rows(built, "select count(*) as n, count(*) as keys from staging.stg_salesforce__accounts")
    for audience in AUDIENCES:
        counts = _rows(built, f"select count(*) as n, count(distinct profile_id) as keys from audiences.{audience}")[0]
        assert counts["n"] == counts["keys"] > 0, audience


def test_profiles_bring_the_tools_together(built: Path) -> None:
    (payer,) = _rows(built, "select * from marts.customer_profiles where user_id = 'usr_p_payer'")
    assert payer["primary_email"] == "planted.payer@harbor.io"
    assert payer["stripe_customer_id"].startswith("cus_") and payer["plan"] == "pro"
    assert payer["subscription_status"] == "active" and payer["mrr"] > 0 and payer["is_customer"]
    assert payer["lifecycle_stage"] == "customer"
    (planted_in,) = _rows(built, "select * from marts.customer_profiles where user_id = 'usr_p_in'")
    assert planted_in["customerio_id"] is not None and planted_in["customerio_identifier"] == "usr_p_in"
    assert (planted_in["email_consent_status"], planted_in["email_eligible"]) == ("opted_in", True)
    assert (planted_in["sms_consent_status"], planted_in["sms_eligible"]) == ("unknown", False)
    # A world customer: Salesforce contact and account, won deal, Stripe subscription, one profile.
    customers = _rows(
        built,
        "select * from marts.customer_profiles where salesforce_contact_id is not null "
        "and stripe_customer_id is not null and opportunity_status = 'won' and is_paying",
    )
    assert customers, "no world customer came together across Salesforce, Stripe and the events"
    assert all(c["lifecycle_stage"] == "customer" and c["user_id"] for c in customers)


def test_account_status(built: Path) -> None:
    accounts = _rows(built, "select * from marts.account_status")
    won = [a for a in accounts if a["won_opportunity_count"] > 0]
    assert won and all(a["opportunity_status"] in ("won", "open", "lost") for a in won)
    paying = [a for a in accounts if a["is_paying"]]
    assert paying and all(a["stripe_status"] in ("active", "past_due") and a["mrr"] > 0 for a in paying)


def test_signed_up_no_source_audience(built: Path) -> None:
    inside = members(built, "audience_signed_up_no_source")
    assert {"usr_p_in", "usr_p_late"} <= inside
    assert not {"usr_p_out", "usr_p_recent", "usr_p_quick"} & inside
    rows = _rows(
        built,
        "select signed_up_at, first_source_created_at, member_since from audiences.audience_signed_up_no_source",
    )
    window = timedelta(days=3)
    for row in rows:  # the definition holds for every member, world people included
        assert row["signed_up_at"] + window <= AS_OF and row["member_since"] == row["signed_up_at"] + window
        assert row["first_source_created_at"] is None or row["first_source_created_at"] > row["member_since"]


def test_quote_and_customer_audiences(built: Path) -> None:
    assert "usr_p_quote" in members(built, "audience_enterprise_quote_requested")
    assert "usr_p_in" not in members(built, "audience_enterprise_quote_requested")
    customers = members(built, "audience_became_customer")
    assert "usr_p_payer" in customers and "usr_p_quote" not in customers
    flags = _rows(
        built,
        "select p.is_customer from audiences.audience_became_customer a "
        "join marts.customer_profiles p using (profile_id)",
    )
    assert flags and all(f["is_customer"] for f in flags)


def test_people_feed_excludes_the_opted_out_and_the_suppression_feed_carries_them(built: Path, world: World) -> None:
    people = _column(built, "select email from sync.sync_customerio_people")
    suppressions = {r["email"]: r for r in _rows(built, "select * from sync.sync_customerio_suppressions")}
    # The planted person opted out only on a since-deleted Salesforce lead.
    out = SIGNUPS["usr_p_out"][0]
    assert out not in people
    assert (suppressions[out]["action"], suppressions[out]["consent_source"]) == ("unsubscribe", "salesforce")
    assert suppressions[out]["unsubscribed"] is True
    assert SIGNUPS["usr_p_in"][0] in people and SIGNUPS["usr_p_in"][0] not in suppressions

    # Everyone the world says is opted out: in no marketing feed or audience, and, when Customer.io
    # has them, in the suppression feed.
    opted_out = world_opted_out(world)
    assert opted_out, "the world has no opted-out people to check"
    assert not opted_out & people
    for audience in AUDIENCES:
        assert not opted_out & _column(built, f"select email from audiences.{audience}"), audience
    in_customerio = _column(built, "select email from staging.stg_customerio__customers where email is not null")
    assert opted_out & in_customerio
    assert opted_out & in_customerio <= set(suppressions)

    # Both feeds agree with consent_status, row by row.
    statuses = _rows(
        built,
        "select c.status, c.eligible from sync.sync_customerio_people f "
        "join consent.consent_status c on c.profile_id = f.profile_id and c.channel = 'email'",
    )
    assert len(statuses) == len(people) and all(s["eligible"] for s in statuses)
    assert {r["consent_status"] for r in suppressions.values()} <= {"opted_out", "suppressed", "erased"}


def test_email_consent_agrees_with_the_worlds_record(built: Path, world: World) -> None:
    """The world keeps every consent change it scattered over the event stream, Customer.io and
    Salesforce; consent_status must recover it. Opted out in the world: never eligible. Subscribed
    in the world: never opted out, and opted in unless a bounce suppressed the address or the
    evidence never reached the warehouse (a journey the event budget left out)."""
    status = {
        row["email"]: row["status"]
        for row in _rows(
            built,
            "select g.identifier as email, c.status from identity.identity_graph g "
            "join consent.consent_status c on c.profile_id = g.profile_id and c.channel = 'email' "
            "where g.identifier_type = 'email'",
        )
    }
    people = [p for p in world.people if not (p.is_internal or p.is_test) and p.email in status]
    opted_out = [p.email for p in people if p.consent("email") is False]
    subscribed = [p.email for p in people if p.consent("email") is True]
    assert opted_out and subscribed
    assert {status[e] for e in opted_out} <= {"opted_out", "suppressed", "erased"}
    assert "opted_out" not in {status[e] for e in subscribed}
    recovered = [e for e in subscribed if status[e] in ("opted_in", "suppressed")]
    assert len(recovered) >= 0.9 * len(subscribed), (len(recovered), len(subscribed))


def test_salesforce_feeds(built: Path) -> None:
    leads = _rows(built, "select * from sync.sync_salesforce_leads")
    converted = _column(built, "select lead_id from staging.stg_salesforce__leads where is_converted")
    assert leads and not {lead["id"] for lead in leads} & converted
    assert {lead["has_opted_out_of_email"] for lead in leads} <= {True, None}  # set, never cleared
    accounts = _rows(built, "select * from sync.sync_salesforce_accounts")
    assert accounts and {a["account_type"] for a in accounts} <= {"Customer", None}
    assert all(a["plan"] or a["customer_since"] or a["account_type"] for a in accounts)  # no empty update
    paying = _rows(built, "select account_id, stripe_plan from marts.account_status where is_paying")
    by_id = {a["id"]: a for a in accounts}
    assert all(by_id[p["account_id"]]["plan"] == p["stripe_plan"] for p in paying)
    assert all(by_id[p["account_id"]]["account_type"] == "Customer" for p in paying)


def test_sync_specs_are_complete() -> None:
    """Every sync model has a `meta.sync` spec whose mapped columns exist; every audience a `meta.audience`."""
    manifest_dir = DBT_PROJECT_DIR / "models" / "sync"
    specs = {m["name"]: m["meta"]["sync"] for m in yaml.safe_load((manifest_dir / "_sync.yml").read_text())["models"]}
    assert set(specs) == set(SYNCS)
    required = {"destination", "object", "mode", "primary_key", "purpose", "fields", "schedule"}
    for name, spec in specs.items():
        assert required <= set(spec), name
        assert spec["mode"] in ("upsert", "update_only", "mirror", "suppression")
        assert spec["purpose"] in ("marketing", "operational")
        assert spec["purpose"] != "marketing" or spec.get("consent_channel")
    assert [n for n, s in specs.items() if s["mode"] == "suppression"] == ["sync_customerio_suppressions"]


def test_mapped_columns_exist(built: Path) -> None:
    specs = {
        m["name"]: m["meta"]["sync"]
        for m in yaml.safe_load((DBT_PROJECT_DIR / "models/sync/_sync.yml").read_text())["models"]
    }
    for name, spec in specs.items():
        columns = _column(
            built,
            "select column_name from information_schema.columns where table_schema = 'sync' and table_name = ?",
            [name],
        )
        wanted = (
            set(spec["fields"])
            | {spec["primary_key"]}
            | {spec[k] for k in ("profile_column", "action_column") if k in spec}
        )
        assert wanted <= columns, (name, wanted - columns)
    audiences = _rows(
        built,
        "select table_name from information_schema.tables where table_schema = 'audiences'",
    )
    assert {a["table_name"] for a in audiences} == set(AUDIENCES)


def test_consent_test_fails_on_a_planted_opted_out_person(built: Path, tmp_path: Path) -> None:
    """The generic test `only_eligible_profiles` catches an opted-out person in a marketing feed.

    The build passed it on the real feed; here its query, exactly as dbt compiled it for that build,
    runs on a copy of the warehouse with an opted-out person planted in the feed. A dbt test fails
    when its query returns rows (a second `dbt test` would cost a full parse for the same answer).
    """
    compiled = built.parent / "dbt_target" / "compiled" / "cdp" / "models" / "sync" / "_sync.yml"
    (query,) = [p for p in compiled.glob("only_eligible_profiles_sync_cu*.sql")]
    warehouse = tmp_path / built.name  # the same file name: the compiled SQL names the database by it
    shutil.copy(built, warehouse)
    out_profile = profile_of(warehouse, "user_id", "usr_p_out")
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute(query.read_text()).fetchall() == []
        con.execute(
            "insert into sync.sync_customerio_people (id, email, profile_id) values ('usr_p_out', ?, ?)",
            [SIGNUPS["usr_p_out"][0], out_profile],
        )
        failures = con.execute(query.read_text()).fetchall()
    # counted three times: by the profile, by the email that belongs to it, and by the address itself
    # as a contact point (consent_contact_points)
    email = SIGNUPS["usr_p_out"][0]
    assert sorted(row[2] for row in failures) == ["contact point " + email, "email " + email, "profile"]


# Functions the Snowflake dialect does not know that a DuckDB compile may contain, each only through
# a macro that dispatches to a Snowflake form (macros/consent/consent_helpers.sql, macros/saas.sql).
DISPATCHED_FUNCTIONS = {"EPOCH": "epoch_seconds"}


def test_compiled_sql_is_snowflake_sql(built: Path) -> None:
    """The consent, mart, audience and sync models parse as Snowflake SQL.

    Compiled for DuckDB (the dev target; dbt-snowflake is not installed here), then parsed by
    sqlglot's Snowflake dialect, which rejects DuckDB-only syntax. A function Snowflake does not have
    must come from a dispatched macro whose Snowflake form is written separately.
    """
    compiled = built.parent / "dbt_target" / "compiled" / "cdp" / "models"
    folders = ("consent", "marts", "audiences", "sync")
    files = sorted(f for folder in folders for f in (compiled / folder).glob("*.sql"))
    assert len(files) >= 2 + 3 + len(AUDIENCES) + len(SYNCS), files
    for path in files:
        tree = sqlglot.parse_one(path.read_text(), read="snowflake")
        unknown = {f.name.upper() for f in tree.find_all(exp.Anonymous)} - set(DISPATCHED_FUNCTIONS)
        assert not unknown, (path.name, unknown)
