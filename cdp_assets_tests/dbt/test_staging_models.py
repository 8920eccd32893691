"""The dbt staging models, built by real dbt on a real DuckDB file.

Each test writes an `event_stream` schema the way the loader leaves it, runs one `dbt build` as a
subprocess (artifacts and logs under tmp_path, never in the repo) and reads the staging views back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from cdp_assets.dbt_cli import run_dbt

STAGING_MODELS = {"stg_tracks", "stg_pages", "stg_identifies", "stg_users"}

# Columns the loader guarantees (rudderstack-formats.md §4.2); everything else comes from the data.
_ID_COLUMNS = [
    "id",
    "anonymous_id",
    "user_id",
    "channel",
    "context_ip",
    "context_request_ip",
    "context_passed_ip",
    "context_source_id",
    "context_source_type",
    "context_destination_id",
    "context_destination_type",
]
_TIME_COLUMNS = ["sent_at", "timestamp", "received_at", "original_timestamp", "uuid_ts"]
_EVENT_COLUMNS = {name: "VARCHAR" for name in _ID_COLUMNS} | {name: "TIMESTAMPTZ" for name in _TIME_COLUMNS}
GUARANTEED_TABLES: dict[str, dict[str, str]] = {
    "tracks": _EVENT_COLUMNS | {"event_text": "VARCHAR", "event": "VARCHAR"},
    "pages": _EVENT_COLUMNS | {"name": "VARCHAR"},
    "screens": _EVENT_COLUMNS | {"name": "VARCHAR"},
    "identifies": dict(_EVENT_COLUMNS),
    "groups": _EVENT_COLUMNS | {"group_id": "VARCHAR"},
    "aliases": _EVENT_COLUMNS | {"previous_id": "VARCHAR"},
    "users": {name: kind for name, kind in _EVENT_COLUMNS.items() if name != "user_id"},
    "rudder_discards": {
        "table_name": "VARCHAR",
        "row_id": "VARCHAR",
        "column_name": "VARCHAR",
        "column_value": "VARCHAR",
        "received_at": "TIMESTAMPTZ",
        "uuid_ts": "TIMESTAMPTZ",
        "reason": "VARCHAR",
    },
}

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _varchar(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, "VARCHAR")


def _event(message_id: str, minutes: int = 0, **columns: object) -> dict[str, object]:
    """A row with the standard columns filled the way the gateway fills them."""
    at = T0 + timedelta(minutes=minutes)
    return {
        "id": message_id,
        "anonymous_id": "anon-1",
        "channel": "web",
        "context_source_type": "Javascript",
        "context_source_id": "src-1",
        "sent_at": at,
        "timestamp": at,
        "received_at": at,
        "original_timestamp": at,
        "uuid_ts": at,
        **columns,
    }


def _create_warehouse(path: Path, optional_columns: dict[str, dict[str, str]] | None = None) -> None:
    """The event_stream schema as the loader leaves it: guaranteed columns, plus any optional ones."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema event_stream")
        for table, columns in GUARANTEED_TABLES.items():
            columns = columns | (optional_columns or {}).get(table, {})
            ddl = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
            con.execute(f'create table event_stream."{table}" ({ddl})')


def _insert(path: Path, table: str, rows: list[dict[str, object]]) -> None:
    with duckdb.connect(str(path)) as con:
        for row in rows:
            names = ", ".join(f'"{name}"' for name in row)
            marks = ", ".join("?" for _ in row)
            con.execute(f'insert into event_stream."{table}" ({names}) values ({marks})', list(row.values()))


def _dbt_build(tmp_path: Path, warehouse: Path) -> dict[str, str]:
    """Run `dbt build` once; return {unique_id: status} from run_results.json."""
    # The event-stream staging models and their tests; the SaaS ones are tested on their own data.
    result = run_dbt(["build", "--select", *sorted(STAGING_MODELS)], warehouse, tmp_path, timeout=300)
    assert result.returncode == 0, f"dbt build failed:\n{result.stdout}\n{result.stderr}"
    run_results = json.loads((tmp_path / "dbt_target" / "run_results.json").read_text())
    return {entry["unique_id"]: entry["status"] for entry in run_results["results"]}


def _rows(warehouse: Path, sql: str) -> list[dict[str, object]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _assert_views_in_staging(warehouse: Path) -> None:
    tables = _rows(
        warehouse,
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_name like 'stg\\_%' escape '\\'",
    )
    assert {(t["table_schema"], t["table_name"], t["table_type"]) for t in tables} == {
        ("staging", name, "VIEW") for name in STAGING_MODELS
    }
    schemas = {row["schema_name"] for row in _rows(warehouse, "select schema_name from information_schema.schemata")}
    assert "main_staging" not in schemas


def test_staging_builds_with_guaranteed_columns_only(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    _create_warehouse(warehouse)
    _insert(
        warehouse,
        "tracks",
        [
            _event("t-1", user_id="", event_text="Signed Up", event="signed_up"),
            _event(
                "t-2",
                1,
                user_id=" user-1 ",
                anonymous_id="  ",
                event_text="Order Completed",
                event="order_completed",
                channel="server",
            ),
        ],
    )
    _insert(warehouse, "pages", [_event("p-1", user_id="user-1", name="Pricing")])
    _insert(warehouse, "identifies", [_event("i-1", user_id="user-1")])
    _insert(warehouse, "users", [_event("user-1")])

    statuses = _dbt_build(tmp_path, warehouse)

    assert sum(uid.startswith("model.cdp.stg_") for uid in statuses) == len(STAGING_MODELS)
    assert set(statuses.values()) == {"success", "pass"}
    _assert_views_in_staging(warehouse)

    tracks = _rows(warehouse, "select * from staging.stg_tracks order by message_id")
    assert [(t["message_id"], t["user_id"], t["anonymous_id"]) for t in tracks] == [
        ("t-1", None, "anon-1"),  # empty user id -> null
        ("t-2", "user-1", None),  # trimmed; blank anonymous id -> null
    ]
    assert [(t["event_name"], t["event_table"], t["channel"]) for t in tracks] == [
        ("Signed Up", "signed_up", "web"),
        ("Order Completed", "order_completed", "server"),
    ]
    assert tracks[0]["occurred_at"] == T0
    assert tracks[0]["source_type"] == "Javascript"
    assert all(t["email"] is None and t["session_id"] is None for t in tracks)  # columns absent upstream

    (page,) = _rows(warehouse, "select * from staging.stg_pages")
    assert page["page_name"] == "Pricing"
    assert page["url"] is None and page["utm_source"] is None

    (identify,) = _rows(warehouse, "select * from staging.stg_identifies")
    assert identify["user_id"] == "user-1" and identify["email"] is None

    assert _rows(warehouse, "select user_id, email from staging.stg_users") == [{"user_id": "user-1", "email": None}]


def test_staging_normalises_optional_columns(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    _create_warehouse(
        warehouse,
        optional_columns={
            "tracks": _varchar("context_traits_email") | {"context_session_id": "BIGINT"},
            "pages": _varchar(
                "url",
                "path",
                "title",
                "context_page_url",
                "context_page_path",
                "context_page_referrer",
                "context_campaign_source",
                "context_campaign_medium",
                "context_campaign_name",
            ),
            "identifies": _varchar(
                "context_traits_email",
                "email",
                "context_traits_first_name",
                "last_name",
                "context_traits_company_name",
            ),
            "users": _varchar("context_traits_email", "email", "context_traits_first_name", "context_traits_company"),
        },
    )
    _insert(
        warehouse,
        "tracks",
        [
            _event(
                "t-1",
                user_id="user-1",
                event_text="Viewed",
                event="viewed",
                channel="Web",
                context_traits_email="  Alice@Example.COM ",
                context_session_id=1714557600000,
            ),
            _event("t-2", 1, user_id="user-1", event_text="Viewed", event="viewed", channel="cloud"),
        ],
    )
    _insert(
        warehouse,
        "pages",
        [
            _event(
                "p-1",
                name="Pricing",
                url="https://example.com/pricing?utm_source=news",
                path="/pricing",
                title="Pricing",
                context_page_url="https://ignored.example",
                context_campaign_source="news",
                context_campaign_medium="email",
                context_campaign_name="spring",
            ),
            # properties missing: fall back to context.page
            _event(
                "p-2",
                1,
                name="Home",
                context_page_url="https://example.com/",
                context_page_path="/",
                context_page_referrer="https://google.com/",
            ),
        ],
    )
    _insert(
        warehouse,
        "identifies",
        [
            _event(
                "i-1",
                user_id="user-1",
                context_traits_email=" Bob@X.io ",
                email="other@x.io",
                context_traits_first_name="Bob",
                last_name="Builder",
                context_traits_company_name="Acme",
            ),
            _event("i-2", 1, user_id="user-2", email=" CAROL@x.io"),
            _event("i-3", 2, user_id="user-3", context_traits_email="  ", email="dan@x.io"),
        ],
    )
    _insert(
        warehouse,
        "users",
        [
            _event("user-1", context_traits_email="old@x.io"),
            _event(
                "user-1 ",
                5,
                context_traits_email=" NEW@x.io",
                context_traits_first_name="Bob",
                context_traits_company="Acme",
            ),  # same id once trimmed, identified later
            _event("user-2", email="CAROL@x.io"),
            _event("", context_traits_email="nobody@x.io"),  # blank id: not a user
        ],
    )

    statuses = _dbt_build(tmp_path, warehouse)

    channel_tests = {uid: s for uid, s in statuses.items() if uid.startswith("test.cdp.accepted_values_stg_tracks")}
    assert list(channel_tests.values()) == ["warn"]  # "cloud" warns without failing the build
    assert all(s in {"success", "pass"} for uid, s in statuses.items() if uid not in channel_tests)
    _assert_views_in_staging(warehouse)

    tracks = _rows(warehouse, "select message_id, email, session_id, channel from staging.stg_tracks order by 1")
    assert tracks == [
        {"message_id": "t-1", "email": "alice@example.com", "session_id": 1714557600000, "channel": "web"},
        {"message_id": "t-2", "email": None, "session_id": None, "channel": "cloud"},
    ]

    pages = _rows(
        warehouse,
        "select message_id, page_name, url, path, title, referrer, utm_source, utm_medium, utm_campaign "
        "from staging.stg_pages order by 1",
    )
    assert [tuple(page.values()) for page in pages] == [
        ("p-1", "Pricing", "https://example.com/pricing?utm_source=news", "/pricing", "Pricing", None,
         "news", "email", "spring"),
        # properties missing: context.page fills in
        ("p-2", "Home", "https://example.com/", "/", None, "https://google.com/", None, None, None),
    ]  # fmt: skip

    identifies = _rows(
        warehouse,
        "select user_id, email, first_name, last_name, company_name from staging.stg_identifies order by 1",
    )
    assert [tuple(row.values()) for row in identifies] == [
        ("user-1", "bob@x.io", "Bob", "Builder", "Acme"),  # context.traits wins over the bare column
        ("user-2", "carol@x.io", None, None, None),
        ("user-3", "dan@x.io", None, None, None),  # a blank context email falls back to the bare column
    ]

    users = _rows(warehouse, "select user_id, email, first_name, company_name from staging.stg_users order by 1")
    assert users == [
        {"user_id": "user-1", "email": "new@x.io", "first_name": "Bob", "company_name": "Acme"},
        {"user_id": "user-2", "email": "carol@x.io", "first_name": None, "company_name": None},
    ]
