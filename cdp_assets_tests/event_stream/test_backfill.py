"""Backfill: `forget_range` removes what the files uploaded in a date range loaded, so the next load reads
them again; forgetting and reloading gives the same tables, however often it is done."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cdp_assets.event_stream.loader import Forgotten, forget_range
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse
from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, dicts, load, query, snapshot

DAY1 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
DAY3 = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)


def _identify(message_id: str, user_id: str, day: int, **traits) -> dict:
    stamp = f"2026-11-0{day}T10:00:00.000Z"
    return event(
        "identify",
        messageId=message_id,
        userId=user_id,
        receivedAt=stamp,
        sentAt=stamp,
        originalTimestamp=stamp,
        context={"traits": traits},
    )


def _landing(landing) -> dict[str, list[str]]:
    keys = {
        "day1": [
            write_dump(
                landing,
                [_identify("i-1", "u-1", 1, email="one@example.com", plan="free"), event(messageId="t-1")],
                uploaded_at=DAY1,
            ),
            write_dump(
                landing, [event(messageId="t-2", properties={"n": 1}), "junk"], uploaded_at=DAY1.replace(hour=11)
            ),
        ],
        "day2": [
            write_dump(
                landing,
                [
                    _identify("i-2", "u-1", 2, plan="pro"),
                    _identify("i-3", "u-2", 2, email="two@example.com"),
                    event(messageId="t-3", properties={"n": "text"}),  # a value discard
                    event(messageId="t-1"),  # a duplicate of day 1
                    event(messageId="f-1", integrations={"All": False}),
                ],
                uploaded_at=DAY2,
            ),
            # The legacy MM-DD-YYYY folder is the same day.
            write_dump(
                landing, [event("page", messageId="p-1"), "[]"], uploaded_at=DAY2.replace(hour=11), legacy_date=True
            ),
        ],
        "day3": [write_dump(landing, [event(messageId="t-4"), event(messageId="t-3")], uploaded_at=DAY3)],
    }
    assert "/11-02-2026/" in keys["day2"][1]
    return keys


def _present(landing) -> list[str]:
    return [f.key for f in landing.list_files()]


def _users(wh) -> dict[str, tuple]:
    return {
        r["id"]: (r["context_traits_email"], r["context_traits_plan"]) for r in dicts(wh, f"SELECT * FROM {ES}.users")
    }


def test_forget_a_day_then_reload_it(landing, warehouse_path) -> None:
    keys = _landing(landing)
    wh = DuckDBWarehouse(warehouse_path)
    first = load(landing, warehouse_path)
    assert (first.files, first.loaded, first.duplicates, first.filtered, first.discarded) == (5, 8, 2, 1, 2)
    full = snapshot(warehouse_path)
    assert _users(warehouse_path) == {"u-1": ("one@example.com", "pro"), "u-2": ("two@example.com", None)}

    deleted = forget_range(wh, date(2026, 11, 2), date(2026, 11, 2), _present(landing))
    assert (deleted.files, deleted.kept_missing) == (2, [])
    assert deleted.rows["identifies"] == 2 and deleted.rows["tracks"] == 1 and deleted.rows["pages"] == 1
    # What the day-2 files loaded is gone, ledger included; days 1 and 3 are untouched.
    ids = {r[0] for r in query(warehouse_path, f"SELECT id FROM {ES}.tracks")}
    assert ids == {"t-1", "t-2", "t-4"}
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.pages")[0][0] == 0
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.rudder_discards")[0][0] == 0
    files = {r[0] for r in query(warehouse_path, f"SELECT file_key FROM {LEDGER}.files")}
    assert files == set(keys["day1"] + keys["day3"])
    for table in ("messages", "load_errors", "filtered", "duplicates"):
        left = {r[0] for r in query(warehouse_path, f"SELECT DISTINCT file_key FROM {LEDGER}.{table}")}
        assert not left & set(keys["day2"]), table
    # users is rebuilt from what is left: u-1 back to day 1, u-2 gone.
    assert _users(warehouse_path) == {"u-1": ("one@example.com", "free")}

    again = load(landing, warehouse_path)
    assert again.files == 2
    assert (again.loaded, again.duplicates, again.filtered, again.discarded) == (4, 1, 1, 1)
    assert snapshot(warehouse_path) == full

    # Twice more, with a forget run twice in a row: the same tables every time.
    for _ in range(2):
        forget_range(wh, date(2026, 11, 2), date(2026, 11, 2), _present(landing))
        assert forget_range(wh, date(2026, 11, 2), date(2026, 11, 2), _present(landing)).files == 0
        assert load(landing, warehouse_path).files == 2
        assert snapshot(warehouse_path) == full


def test_forget_a_range_and_a_range_with_nothing_in_it(landing, warehouse_path) -> None:
    _landing(landing)
    wh = DuckDBWarehouse(warehouse_path)
    load(landing, warehouse_path)
    full = snapshot(warehouse_path)
    assert forget_range(wh, date(2026, 10, 1), date(2026, 10, 31), _present(landing)) == Forgotten()
    assert snapshot(warehouse_path) == full
    deleted = forget_range(wh, date(2026, 11, 1), date(2026, 11, 3), _present(landing))
    assert deleted.files == 5
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.tracks")[0][0] == 0
    assert query(warehouse_path, f"SELECT count(*) FROM {ES}.users")[0][0] == 0
    assert query(warehouse_path, f"SELECT count(*) FROM {LEDGER}.messages")[0][0] == 0
    assert load(landing, warehouse_path).files == 5
    assert snapshot(warehouse_path) == full


def test_forget_before_any_load_is_harmless(warehouse_path) -> None:
    assert forget_range(DuckDBWarehouse(warehouse_path), date(2026, 11, 1), date(2026, 11, 2), []) == Forgotten()


def test_a_file_gone_from_landing_keeps_what_it_loaded(landing, warehouse_path) -> None:
    # Reloading it would lose its rows for good: they stay, and the file is reported.
    keys = _landing(landing)
    wh = DuckDBWarehouse(warehouse_path)
    load(landing, warehouse_path)
    full = snapshot(warehouse_path)
    gone = keys["day2"][1]  # the page p-1
    (landing.root / gone).unlink()
    deleted = forget_range(wh, date(2026, 11, 2), date(2026, 11, 2), _present(landing))
    assert (deleted.files, deleted.kept_missing) == (1, [gone])
    assert query(warehouse_path, f"SELECT id FROM {ES}.pages") == [("p-1",)]
    assert query(warehouse_path, f"SELECT count(*) FROM {LEDGER}.files WHERE file_key = ?", [gone]) == [(1,)]
    assert load(landing, warehouse_path).files == 1
    assert snapshot(warehouse_path) == full
