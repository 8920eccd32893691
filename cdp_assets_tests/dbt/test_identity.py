"""Identity resolution (dbt_project/models/identity), built by real dbt on a real DuckDB file.

Once per module, several disjoint known graphs are written the way the real pipeline leaves them
(events as RudderStack dump lines through the real loader; Salesforce, Stripe and Customer.io raw
tables shaped as the dlt sources write them), then one `dbt build` of the identity models and their
staging runs as a subprocess. Each graph's partition in identity_graph must equal the one an
in-memory union-find (cdp_assets.identity.union_find) gives on the same records after the guards,
which this module states again in Python: normalisation, junk values, excluded emails, hub limit.

The stability tests then rebuild (a full refresh; a run after new events that add an unrelated
person and merge two profiles) and read identity_graph and identity_merges again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from cdp_assets.dbt_cli import run_dbt
from cdp_assets.event_stream.landing import LocalLandingStore, dump_key
from cdp_assets.event_stream.loader import load_events
from cdp_assets.identity.union_find import as_partition, components
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse

SOURCE_ID = "2Gidentity0000000000000001"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SELECT = ["+identity_graph_previous", "identity_rejected", "identity_device_visits"]

# The project's defaults (dbt_project.yml, "--- identity"), restated: the oracle applies the same rules.
JUNK_VALUES = {"null", "undefined", "unknown", "anonymous", "nan", "-1", "none", "nil", "n/a", "[object object]"}
EXCLUDED_DOMAINS = ("example.com", "test.com", "mailinator.com", "rudderstack.com", "rudderlabs.com")
MAX_LINKS = 100

Identifier = tuple[str, str]  # (identifier_type, identifier)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def scrambled(prefix: str, i: int) -> str:
    """An id whose sort order is unrelated to its position in a chain (node numbers follow the sort)."""
    return f"{prefix}-{hashlib.md5(f'{prefix}{i}'.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Record:
    """One source record and the raw identifiers it names, as (identifier_type, raw value)."""

    kind: str  # identify, track, page, sf_lead, sf_contact, sf_deleted_lead, stripe, customerio
    ids: tuple[tuple[str, str], ...]
    hours: float = 0


def identify(user_id: str | None, anonymous_id: str | None, hours: float, email: str | None = None) -> Record:
    ids = [("user_id", user_id), ("anonymous_id", anonymous_id), ("email", email)]
    return Record("identify", tuple((t, v) for t, v in ids if v is not None), hours)


def track(user_id: str | None, anonymous_id: str | None, hours: float) -> Record:
    ids = [("user_id", user_id), ("anonymous_id", anonymous_id)]
    return Record("track", tuple((t, v) for t, v in ids if v is not None), hours)


def page(anonymous_id: str, hours: float) -> Record:
    return Record("page", (("anonymous_id", anonymous_id),), hours)


def sf_lead(lead_id: str, email: str, converted_contact_id: str | None = None, hours: float = 0) -> Record:
    ids = [("salesforce_lead_id", lead_id), ("email", email)]
    if converted_contact_id:
        ids.append(("salesforce_contact_id", converted_contact_id))
    return Record("sf_lead", tuple(ids), hours)


def sf_contact(contact_id: str, email: str, hours: float = 0) -> Record:
    return Record("sf_contact", (("salesforce_contact_id", contact_id), ("email", email)), hours)


def sf_deleted_lead(lead_id: str, master_lead_id: str, email: str, hours: float = 0) -> Record:
    ids = (("salesforce_lead_id", lead_id), ("salesforce_lead_id", master_lead_id), ("email", email))
    return Record("sf_deleted_lead", ids, hours)


def stripe(customer_id: str, email: str, user_id: str | None = None, hours: float = 0) -> Record:
    ids = [("stripe_customer_id", customer_id), ("email", email)]
    if user_id:
        ids.append(("user_id", user_id))
    return Record("stripe", tuple(ids), hours)


def customerio(workspace_id: str, cio_id: str, email: str, hours: float = 0) -> Record:
    workspace_type = "email" if "@" in workspace_id else "user_id"
    ids = (("customerio_id", cio_id), ("email", email), (workspace_type, workspace_id))
    return Record("customerio", ids, hours)


def _chain() -> list[Record]:
    # 51 anonymous ids, each linked to the next through an email; first seen in the middle. (Through
    # user ids, every inner device would link two accounts and be quarantined as shared.)
    records = []
    for i in range(50):
        email, here, there = f"{scrambled('ch-e', i)}@acme.io", scrambled("ch-a", i), scrambled("ch-a", i + 1)
        hours = abs(25 - i) + 1
        records += [identify(None, here, hours, email=email), identify(None, there, hours + 0.5, email=email)]
    return records


def _star() -> list[Record]:
    user = "st-user"
    return [identify(user, None, 2, email="star@acme.io")] + [
        track(user, scrambled("st-a", i), 3 + i / 10) for i in range(30)
    ]


def _email_variants() -> list[Record]:
    # one person, their email typed five ways across four systems
    return [
        identify("ev-user", "ev-anon", 1, email=" Ev.Person@Acme.IO "),
        sf_lead("00Qev0000000001", "ev.person@acme.io  ", hours=2),
        stripe("cus_ev", "EV.PERSON@ACME.IO", hours=3),
        customerio("ev.Person@acme.io", "cio_ev", "\tev.person@Acme.io\r\n", hours=4),
        # pasted from a web page: a no-break space and a zero-width space around it
        identify("ev-user", None, 5, email="\u200bev.person@acme.io\u00a0"),
        # a different person whose email differs only past the '@'
        identify("ev-other", None, 1, email="ev.person@acme.co"),
    ]


def _junk() -> list[Record]:
    # every anonymous id meets a junk value another one meets too: none of them may merge
    junk_users = ["null", "NULL", "undefined", "unknown", "Anonymous", "NaN", "-1", "0", "none"]
    records = [identify(value, f"jk-a{i}", 1) for i, value in enumerate(junk_users)]
    records += [identify(value, f"jk-b{i}", 2) for i, value in enumerate(junk_users)]
    records += [
        identify("jk-u1", "00000000-0000-0000-0000-000000000000", 1),
        identify("jk-u2", "00000000-0000-0000-0000-000000000000", 1),
        identify("jk-u3", "undefined", 1),
        identify("jk-u4", "undefined", 1),
        identify("jk-u5", None, 1, email="qa@example.com"),
        identify("jk-u6", None, 1, email="QA@Example.com"),
        identify("jk-u7", None, 1, email="not-an-email"),
        identify("jk-u8", None, 1, email="not-an-email"),
        identify("jk-u9", None, 1, email="anna+ruddertest@gmail.com"),
        identify("jk-u10", None, 1, email="anna+ruddertest@gmail.com"),
        identify("jk-u11", None, 1, email="bob.ops@rudderstack.com"),
        identify("jk-u12", None, 1, email="bob.ops@rudderstack.com"),
        # a subdomain of a test domain is a test address too; notexample.com is not example.com
        identify("jk-u13", None, 1, email="qa@sub.example.com"),
        identify("jk-u14", None, 1, email="QA@Sub.Example.com"),
        identify("jk-u15", None, 1, email="qa@notexample.com"),
        # a no-break space inside an address is no address
        identify("jk-u16", None, 1, email="qa\u00a0person@acme.io"),
        identify("jk-u17", None, 1, email="qa\u00a0person@acme.io"),
    ]
    return records


def _hub() -> list[Record]:
    # a shared kiosk device that 101 people logged in on, each also on their own device
    records = []
    for i in range(MAX_LINKS + 1):
        user = scrambled("hub-u", i)
        records += [track(user, "hub-kiosk", 1), identify(user, scrambled("hub-a", i), 2)]
    return records


def _many_devices() -> list[Record]:
    # one loyal user seen on 101 devices: their own, so not a hub (links to anonymous ids are uncapped)
    return [identify("md-user", "md-anon-0", 1, email="many.devices@acme.io")] + [
        track("md-user", scrambled("md-a", i), 2) for i in range(MAX_LINKS + 1)
    ]


def _crm() -> list[Record]:
    # a lead converted to a contact, the contact's billing account, the product user, a merged-away lead
    return [
        sf_lead("00Qcrm000000001", "crm.person@acme.io", converted_contact_id="003crm000000001", hours=1),
        sf_contact("003crm000000001", "crm.person@work.io", hours=5),
        stripe("cus_crm", "crm.person@work.io", user_id="crm-user", hours=6),
        identify("crm-user", "crm-anon", 7),
        customerio("crm-user", "cio_crm", "crm.person@work.io", hours=8),
        sf_deleted_lead("00Qcrm000000000", "00Qcrm000000001", "crm.old@acme.io", hours=9),
    ]


def _lone() -> list[Record]:
    return [page("lone-visitor", 1)]


def _merge_later() -> list[Record]:
    # a user, and an anonymous visitor, until the later load shows the visitor log in as that user
    return [identify("mg-user-1", "mg-anon-1", 1), page("mg-anon-2", 2)]


def _shared_device() -> list[Record]:
    # two accounts logged in on one laptop: two people, the device quarantined (linked to two user ids)
    return [
        identify("sd-user-1", "sd-device", 1, email="sd.one@acme.io"),
        identify("sd-user-2", "sd-device", 2, email="sd.two@acme.io"),
        page("sd-device", 3),
    ]


GRAPHS: dict[str, list[Record]] = {
    "chain": _chain(),
    "star": _star(),
    "email_variants": _email_variants(),
    "junk": _junk(),
    "hub": _hub(),
    "many_devices": _many_devices(),
    "crm": _crm(),
    "lone": _lone(),
    "merge_later": _merge_later(),
    "shared_device": _shared_device(),
}
LATER = [
    identify("mg-user-1", "mg-anon-2", 20),  # merges the two merge_later profiles
    identify("new-user", "new-anon", 21),  # an unrelated person
]


# ------------------------------------------------------------------------------------------ oracle


def normalise(identifier_type: str, raw: str) -> str | None:
    # surrounding blanks, tabs and line breaks, as the staging macros clean_string / normalize_email trim
    value = raw.strip(" \t\n\v\f\r\u00a0\u202f\u200b\ufeff")
    if identifier_type == "email":
        value = value.lower()
    return value or None


def is_junk(identifier_type: str, value: str) -> bool:
    if value.lower() in JUNK_VALUES or not value.replace("0", "").replace("-", ""):
        return True
    if identifier_type == "email":
        if not re.fullmatch(r".+@.+", value) or " " in value or "\u00a0" in value:
            return True
        domain = value.rsplit("@", 1)[1]
        if any(domain == d or domain.endswith("." + d) for d in EXCLUDED_DOMAINS) or "+ruddertest@" in value:
            return True
    return False


def valid_ids(record: Record) -> list[Identifier]:
    ids = []
    for identifier_type, raw in record.ids:
        value = normalise(identifier_type, raw)
        if value is not None and not is_junk(identifier_type, value):
            ids.append((identifier_type, value))
    return ids


def link_cap(identifier_type: str, linked_type: str) -> int | None:
    """The hub guard's cap for a pair of types (dbt_project.yml identity_link_caps): none on links to
    anonymous ids, a person's own devices; one user id (at most one account per person); MAX_LINKS
    otherwise."""
    return {"anonymous_id": None, "user_id": 1}.get(linked_type, MAX_LINKS)


def quarantined(records: list[Record]) -> set[Identifier]:
    """The hub guard: an identifier linked to more distinct identifiers of one type than that pair's cap."""
    links: dict[tuple[Identifier, str], set[Identifier]] = defaultdict(set)
    for record in records:
        ids = valid_ids(record)
        for a in ids:
            for b in ids:
                if a != b:
                    links[(a, b[0])].add(b)
    return {
        identifier
        for (identifier, linked_type), linked in links.items()
        if (cap := link_cap(identifier[0], linked_type)) is not None and len(linked) > cap
    }


def expected_partition(records: list[Record]) -> set[frozenset[Identifier]]:
    """Union-find over every record's valid identifiers, the quarantined ones left out."""
    hubs = quarantined(records)
    edges: list[tuple[Identifier, Identifier]] = []
    for record in records:
        ids = [i for i in valid_ids(record) if i not in hubs]
        edges += [(i, i) for i in ids] + list(zip(ids, ids[1:], strict=False))
    return as_partition(components(edges))


# ------------------------------------------------------------------------------------------ inputs


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event_line(record: Record) -> dict[str, Any]:
    moment = _iso(at(record.hours))
    ids = dict(record.ids)
    line: dict[str, Any] = {
        "type": record.kind,
        "messageId": str(uuid.uuid4()),
        "channel": "server",
        "timestamp": moment,
        "sentAt": moment,
        "originalTimestamp": moment,
        "receivedAt": moment,
        "context": {"library": {"name": "analytics-python", "version": "2.1.9"}},
    }
    if "user_id" in ids:
        line["userId"] = ids["user_id"]
    if "anonymous_id" in ids:
        line["anonymousId"] = ids["anonymous_id"]
    if "email" in ids:
        line["context"]["traits"] = {"email": ids["email"]}
    if record.kind == "track":
        line["event"] = "Product Viewed"
        line["properties"] = {}
    return line


def load_event_records(warehouse: Path, landing: Path, records: list[Record], uploaded_at: datetime) -> None:
    lines = [_event_line(r) for r in records if r.kind in ("identify", "track", "page")]
    store = LocalLandingStore(landing)
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    store.put(dump_key(SOURCE_ID, uploaded_at, str(uuid.uuid4())), gzip.compress(text.encode(), mtime=0))
    summary = load_events(store, DuckDBWarehouse(warehouse))
    assert summary.loaded == len(lines) and summary.balanced, summary


def write_saas_records(warehouse: Path, records: list[Record]) -> None:
    """Raw tables with the columns the dlt sources write (snake_case names, nested fields `a__b`)."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw_salesforce")
        con.execute(
            "create table raw_salesforce.lead (id varchar, is_deleted boolean, master_record_id varchar, "
            "email varchar, converted_contact_id varchar, created_date timestamptz, last_modified_date timestamptz)"
        )
        con.execute(
            "create table raw_salesforce.contact (id varchar, is_deleted boolean, email varchar, "
            "created_date timestamptz, last_modified_date timestamptz)"
        )
        con.execute("create schema raw_stripe")
        con.execute(
            "create table raw_stripe.customers (id varchar, created bigint, email varchar, metadata__user_id varchar)"
        )
        con.execute("create schema raw_customerio")
        con.execute(
            "create table raw_customerio.customers "
            "(id varchar, cio_id varchar, email varchar, attributes__created_at varchar)"
        )
        for record in records:
            ids = list(record.ids)
            moment = at(record.hours)
            if record.kind == "sf_lead":
                contact = ids[2][1] if len(ids) > 2 else None
                con.execute(
                    "insert into raw_salesforce.lead values (?, false, null, ?, ?, ?, ?)",
                    [ids[0][1], ids[1][1], contact, moment, moment],
                )
            elif record.kind == "sf_deleted_lead":
                con.execute(
                    "insert into raw_salesforce.lead values (?, true, ?, ?, null, ?, ?)",
                    [ids[0][1], ids[1][1], ids[2][1], moment, moment],
                )
            elif record.kind == "sf_contact":
                con.execute(
                    "insert into raw_salesforce.contact values (?, false, ?, ?, ?)",
                    [ids[0][1], ids[1][1], moment, moment],
                )
            elif record.kind == "stripe":
                user = ids[2][1] if len(ids) > 2 else None
                con.execute(
                    "insert into raw_stripe.customers values (?, ?, ?, ?)",
                    [ids[0][1], int(moment.timestamp()), ids[1][1], user],
                )
            elif record.kind == "customerio":
                con.execute(
                    "insert into raw_customerio.customers values (?, ?, ?, ?)",
                    [ids[2][1], ids[0][1], ids[1][1], str(int(moment.timestamp()))],
                )


# --------------------------------------------------------------------------------------------- dbt


def dbt(tmp: Path, warehouse: Path, *args: str, variables: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
    """Run one dbt command on `warehouse` with artifacts and logs under `tmp`."""
    return run_dbt(args, warehouse, tmp, variables, timeout=300)


def build(tmp: Path, warehouse: Path, *extra: str) -> subprocess.CompletedProcess:
    result = dbt(tmp, warehouse, "build", "--select", *SELECT, "--indirect-selection", "cautious", *extra)
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    return result


def rows(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def graph(warehouse: Path) -> dict[Identifier, str]:
    found = rows(warehouse, "select identifier_type, identifier, profile_id from identity.identity_graph")
    return {(r["identifier_type"], r["identifier"]): r["profile_id"] for r in found}


@dataclass
class Built:
    tmp: Path
    warehouse: Path
    first: dict[Identifier, str]  # identity_graph after the first build
    build_output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("identity")
    warehouse = tmp / "warehouse.duckdb"
    records = [r for graph_records in GRAPHS.values() for r in graph_records]
    write_saas_records(warehouse, records)
    load_event_records(warehouse, tmp / "landing", records, at(48))
    result = build(tmp, warehouse)
    return Built(tmp, warehouse, graph(warehouse), result.stdout)


@pytest.fixture(scope="module")
def after_later_events(built: Built) -> dict[Identifier, str]:
    """identity_graph after a later load (a merge and an unrelated person) and a run up to the merge log.

    identity_graph_previous is left as it was, as when a run stops after identity_merges: the next run
    must not log the same merge again.
    """
    load_event_records(built.warehouse, built.tmp / "landing", LATER, at(72))
    result = dbt(built.tmp, built.warehouse, "run", "--select", "+identity_merges")
    assert result.returncode == 0, f"dbt run failed:\n{result.stdout}\n{result.stderr}"
    return graph(built.warehouse)


@pytest.fixture(scope="module")
def rebuilt(built: Built, after_later_events: dict[Identifier, str]) -> dict[Identifier, str]:
    """identity_graph after a full refresh of every identity model, on the same data."""
    result = dbt(built.tmp, built.warehouse, "run", "--select", "identity", "--full-refresh")
    assert result.returncode == 0, f"dbt run --full-refresh failed:\n{result.stdout}\n{result.stderr}"
    return graph(built.warehouse)


# ------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_partition_equals_union_find_after_the_guards(built: Built, name: str) -> None:
    expected = expected_partition(GRAPHS[name])
    ids = {identifier for group in expected for identifier in group}
    by_profile: dict[str, set[Identifier]] = defaultdict(set)
    for identifier, profile_id in built.first.items():
        by_profile[profile_id].add(identifier)
    actual = {frozenset(by_profile[built.first[i]]) for i in ids if i in built.first}
    missing = ids - built.first.keys()
    assert not missing, f"{name}: identifiers missing from identity_graph: {sorted(missing)[:5]}"
    assert actual == expected, f"{name}: {len(actual)} profiles in dbt, {len(expected)} by union-find"


def test_the_whole_graph_is_union_finds_partition(built: Built) -> None:
    records = [r for graph_records in GRAPHS.values() for r in graph_records]
    assert as_partition(built.first) == expected_partition(records)


def test_chain_converges_in_log_rounds(built: Built) -> None:
    # 101 identifiers in one chain: plain propagation needs up to 100 rounds
    found = re.search(r"converged in (\d+) rounds", built.build_output)
    assert found, built.build_output
    assert int(found.group(1)) <= 15


def test_email_variants_are_one_identifier(built: Built) -> None:
    emails = {i for i in built.first if i[0] == "email" and "ev.person@" in i[1]}  # blanks trimmed
    assert emails == {("email", "ev.person@acme.io"), ("email", "ev.person@acme.co")}
    person = built.first[("email", "ev.person@acme.io")]
    assert {i for i, p in built.first.items() if p == person} == {
        ("email", "ev.person@acme.io"),
        ("user_id", "ev-user"),
        ("anonymous_id", "ev-anon"),
        ("salesforce_lead_id", "00Qev0000000001"),
        ("stripe_customer_id", "cus_ev"),
        ("customerio_id", "cio_ev"),
    }


def test_junk_values_are_rejected_with_a_reason(built: Built) -> None:
    rejected = {
        (r["identifier_type"], r["identifier"]): r["reject_reason"]
        for r in rows(built.warehouse, "select * from identity.identity_rejected")
    }
    assert rejected[("user_id", "null")] == rejected[("user_id", "NULL")] == "junk_value"
    assert rejected[("anonymous_id", "00000000-0000-0000-0000-000000000000")] == "all_zero"
    assert rejected[("user_id", "0")] == "all_zero"
    assert rejected[("email", "qa@example.com")] == "excluded_email_domain"
    assert rejected[("email", "bob.ops@rudderstack.com")] == "excluded_email_domain"
    assert rejected[("email", "anna+ruddertest@gmail.com")] == "excluded_email_pattern"
    assert rejected[("email", "not-an-email")] == "invalid_email"
    assert rejected[("email", "qa@sub.example.com")] == "excluded_email_domain"
    assert rejected[("email", "qa\u00a0person@acme.io")] == "invalid_email"
    assert ("email", "qa@notexample.com") not in rejected
    assert not {i for i in built.first if i in rejected}


def test_hub_is_quarantined_and_not_stitched(built: Built) -> None:
    quarantine = rows(built.warehouse, "select * from identity.identity_quarantine")
    assert [
        (q["identifier_type"], q["identifier"], q["linked_identifier_type"], q["linked_count"]) for q in quarantine
    ] == [("anonymous_id", "hub-kiosk", "user_id", MAX_LINKS + 1), ("anonymous_id", "sd-device", "user_id", 2)]
    assert ("anonymous_id", "hub-kiosk") not in built.first
    assert len({built.first[("user_id", scrambled("hub-u", i))] for i in range(MAX_LINKS + 1)}) == MAX_LINKS + 1
    # the star just under the limit is stitched
    assert len({built.first[("anonymous_id", scrambled("st-a", i))] for i in range(30)}) == 1


def test_a_user_with_many_devices_is_not_a_hub(built: Built) -> None:
    # 101 anonymous ids are one person's browsers and phones: the user id keeps its profile and every
    # device joins it (one cap for every pair quarantined the user id, and its opt-outs with it)
    person = built.first[("user_id", "md-user")]
    assert built.first[("email", "many.devices@acme.io")] == person
    assert {built.first[("anonymous_id", scrambled("md-a", i))] for i in range(MAX_LINKS + 1)} == {person}


def test_two_accounts_on_one_device_stay_two_people(built: Built) -> None:
    # reference §3.4 step 5: at most one user id per person; a device two accounts used merges no one
    one, two = built.first[("user_id", "sd-user-1")], built.first[("user_id", "sd-user-2")]
    assert one != two
    assert built.first[("email", "sd.one@acme.io")] == one and built.first[("email", "sd.two@acme.io")] == two
    assert ("anonymous_id", "sd-device") not in built.first
    per_profile = rows(
        built.warehouse,
        "select max(n) as most from (select count(*) as n from identity.identity_graph "
        "where identifier_type = 'user_id' group by profile_id)",
    )
    assert per_profile == [{"most": 1}]
    # the dbt test of the invariant ran in the build and passed
    assert "identity_one_user_id_per_profile_identity_graph" in built.build_output


def test_lone_visitor_has_a_profile(built: Built) -> None:
    profile = built.first[("anonymous_id", "lone-visitor")]
    assert [i for i, p in built.first.items() if p == profile] == [("anonymous_id", "lone-visitor")]


def test_profile_id_is_the_earliest_seen_identifier(built: Built) -> None:
    # the chain's first-seen identifiers are in its middle (hour 1): ties broken by type, then value
    anchor = ("anonymous_id", scrambled("ch-a", 25))
    digest = hashlib.md5(f"{anchor[0]}:{anchor[1]}".encode()).hexdigest()
    assert built.first[anchor] == digest
    crm = built.first[("salesforce_lead_id", "00Qcrm000000001")]
    assert crm == hashlib.md5(b"email:crm.person@acme.io").hexdigest()


def test_graph_columns_and_types(built: Built) -> None:
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        described = con.execute("describe identity.identity_graph").fetchall()
    assert [(c[0], c[1]) for c in described] == [
        ("identifier", "VARCHAR"),
        ("identifier_type", "VARCHAR"),
        ("profile_id", "VARCHAR"),
        ("first_seen", "TIMESTAMP WITH TIME ZONE"),
        ("last_seen", "TIMESTAMP WITH TIME ZONE"),
    ]
    lone = rows(built.warehouse, "select * from identity.identity_graph where identifier = 'lone-visitor'")[0]
    assert lone["first_seen"] == lone["last_seen"] == at(1)


def test_new_edges_merge_two_profiles_and_leave_the_rest_alone(
    built: Built, after_later_events: dict[Identifier, str]
) -> None:
    first, now = built.first, after_later_events
    survivor, merged_away = first[("user_id", "mg-user-1")], first[("anonymous_id", "mg-anon-2")]
    assert survivor != merged_away
    assert now[("anonymous_id", "mg-anon-2")] == now[("anonymous_id", "mg-anon-1")] == survivor  # the oldest survives
    assert {i: p for i, p in now.items() if i in first and not i[1].startswith("mg-")} == {
        i: p for i, p in first.items() if not i[1].startswith("mg-")
    }
    assert ("user_id", "new-user") in now
    merges = rows(built.warehouse, "select * from identity.identity_merges")
    assert [(m["previous_profile_id"], m["profile_id"], m["identifiers_moved"], m["reason"]) for m in merges] == [
        (merged_away, survivor, 1, "merged")
    ]


def test_profile_ids_survive_a_full_rebuild(
    after_later_events: dict[Identifier, str], rebuilt: dict[Identifier, str]
) -> None:
    assert rebuilt == after_later_events


def test_merges_are_logged_once(built: Built, rebuilt: dict[Identifier, str]) -> None:
    # the full refresh compared the same change again (identity_graph_previous was stale): not re-logged,
    # and the log itself survived the full refresh
    assert rows(built.warehouse, "select count(*) as n from identity.identity_merges") == [{"n": 1}]


def test_round_cap_fails_loudly(built: Built, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built.warehouse, warehouse)
    result = dbt(tmp_path, warehouse, "run", "--select", "identity_graph", variables={"identity_max_rounds": 2})
    assert result.returncode != 0
    assert "did not converge within 2 rounds" in result.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:  # the previous graph is still there
        assert con.execute("select count(*) from identity.identity_graph").fetchone()[0] == len(graph(built.warehouse))
        left = con.execute(
            "select count(*) from information_schema.tables where table_name like 'identity_graph__cc%'"
        ).fetchone()
    assert left == (0,)


def test_generated_sql_is_snowflake_sql(built: Built) -> None:
    """The identity models' SQL and the statements the materialization runs parse as Snowflake SQL."""
    compiled = built.tmp / "dbt_target" / "compiled" / "cdp" / "models" / "identity"
    statements = [path.read_text() for path in sorted(compiled.glob("*.sql"))]
    assert len(statements) >= 7
    log = (built.tmp / "dbt_logs" / "dbt.log").read_text()
    entries = re.split(r"^\x1b\[0m\d\d:\d\d:\d\d\.\d+ ", log, flags=re.M)
    runtime = [e.split("*/", 1)[1] for e in entries if "On model.cdp.identity_graph: /*" in e]
    assert len(runtime) >= 8, len(runtime)
    for sql in statements + runtime:
        sqlglot.parse_one(sql, read="snowflake")


def test_a_repeated_merge_and_split_are_each_logged(tmp_path: Path) -> None:
    """The merge log keys a change on the snapshot it was seen against, not on the pair of ids alone.

    A Customer.io person links a user's profile to a visitor's (who gave another email on a form);
    deleting it splits them, restoring it merges them again, deleting it again splits them again:
    three changes, three rows. A run that stops after identity_merges (identity_graph_previous not
    rebuilt) and runs again logs nothing new.
    """
    warehouse = tmp_path / "warehouse.duckdb"
    records = [
        identify("rp-user-1", "rp-anon-1", 1, email="rp.one@acme.io"),
        identify(None, "rp-anon-2", 2, email="rp.two@acme.io"),
    ]
    load_event_records(warehouse, tmp_path / "landing", records, at(48))
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw_customerio")
        con.execute(
            "create table raw_customerio.customers (id varchar, cio_id varchar, email varchar, _deleted boolean)"
        )
        con.execute("insert into raw_customerio.customers values ('rp-user-1', 'cio_rp', 'rp.two@acme.io', false)")

    def rebuild(deleted: bool) -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update raw_customerio.customers set _deleted = ?", [deleted])
        build(tmp_path, warehouse)

    rebuild(False)  # one profile; the first run logs nothing
    one = graph(warehouse)[("user_id", "rp-user-1")]
    rebuild(True)  # split
    two = graph(warehouse)[("anonymous_id", "rp-anon-2")]
    assert one != two
    rebuild(False)  # merged again
    rebuild(True)  # split again
    result = dbt(tmp_path, warehouse, "run", "--select", "identity_merges")  # the same comparison again
    assert result.returncode == 0, f"dbt run failed:\n{result.stdout}\n{result.stderr}"
    logged = rows(warehouse, "select * from identity.identity_merges order by merged_at")
    assert [(m["previous_profile_id"], m["profile_id"], m["reason"]) for m in logged] == [
        (one, two, "split"),
        (two, one, "merged"),
        (one, two, "split"),
    ]
