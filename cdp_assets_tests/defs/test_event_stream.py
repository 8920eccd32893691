"""The event-load multi-asset on hand-written landing files: metadata, checks that pass and fail, reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_assets.defs.event_stream import reload_range
from cdp_assets.event_stream import checks
from cdp_assets.event_stream.landing import LocalLandingStore
from cdp_assets.settings import SettingsError, get_settings
from cdp_assets_tests.conftest import write_dump
from cdp_assets_tests.defs.helpers import check_evaluations, materializations, recent_event, run_load

LOAD_FIGURES = ("load_files", "load_lines", "load_loaded", "load_filtered", "load_duplicates", "load_discarded")


def _good_landing(landing: LocalLandingStore) -> None:
    write_dump(
        landing,
        [
            recent_event(event="signed_up", userId="u1", properties={"plan": "free"}),
            recent_event(event="cta_clicked", properties={"label": "Get started"}),
            recent_event(event="Order Completed", properties={"revenue": 12.5}),  # not in the tracking plan
            recent_event("page", name="Pricing", userId="u1"),
        ],
        uploaded_at=datetime(2026, 11, 1, 10, 30, tzinfo=UTC),
    )
    write_dump(
        landing,
        [recent_event("identify", userId="u1", traits={"email": "a@example.com"}), recent_event("track")],
        uploaded_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )


def test_load_reports_every_table_and_passes_its_checks(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore
) -> None:
    _good_landing(landing)
    result = run_load(defs, instance)
    assert result.success

    found = materializations(result)
    tracks = found["event_stream/tracks"]
    assert tracks["rows_loaded"] == 4 and tracks["dagster/row_count"] == 4
    assert (tracks["load_files"], tracks["load_lines"], tracks["load_loaded"]) == (2, 6, 6)
    assert all(isinstance(tracks[name], int) for name in LOAD_FIGURES)  # numbers, so the UI plots them
    assert isinstance(tracks["load_seconds"], float)
    assert all(isinstance(tracks[f"load_seconds_{p}"], float) for p in ("stage", "classify", "write", "commit"))
    # Untracked events still load, into their own table, and the tracks asset names them.
    assert tracks["untracked_event_tables"] == {"order_completed": 2}  # `event()` defaults to that name
    assert tracks["untracked_rows_loaded"] == 2
    assert found["event_stream/signed_up"]["rows_loaded"] == 1
    assert found["event_stream/signed_up"]["dagster/row_count"] == 1
    assert found["event_stream/pages"]["dagster/row_count"] == 1
    assert found["event_stream/users"]["dagster/row_count"] == 1
    # A tracked event with no row yet still reports (0 rows), so the graph has no stale gaps.
    assert found["event_stream/video_played"]["dagster/row_count"] == 0
    assert found["event_stream/rudder_discards"]["load_discarded"] == 0

    evaluations = check_evaluations(result)
    assert {key for key, e in evaluations.items() if not e.passed} == set()
    assert evaluations["event_stream/tracks:message_id_unique"].metadata["rows"].value == 4
    assert evaluations["event_stream/tracks:tracks_fresh"].metadata["age_hours"].value < 1
    assert evaluations["event_stream/rudder_discards:discards_ratio"].metadata["ratio"].value == 0

    # A second run finds nothing new: nothing loads twice, totals stay.
    again = materializations(run_load(defs, instance))
    assert again["event_stream/tracks"]["rows_loaded"] == 0
    assert again["event_stream/tracks"]["dagster/row_count"] == 4


def test_duplicate_ids_fail_the_blocking_check(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore, warehouse_path: Path
) -> None:
    _good_landing(landing)
    assert run_load(defs, instance).success
    with duckdb.connect(str(warehouse_path)) as conn:  # what a broken loader or a manual insert would do
        conn.execute("INSERT INTO event_stream.tracks SELECT * FROM event_stream.tracks LIMIT 2")

    result = run_load(defs, instance)
    # Blocking: the step fails after recording the evaluation, so nothing downstream builds on it.
    assert not result.success
    evaluation = check_evaluations(result)["event_stream/tracks:message_id_unique"]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["duplicate_rows"].value == 2
    assert evaluation.metadata["sample_duplicate_ids"].value
    assert check_evaluations(result)["event_stream/pages:message_id_unique"].passed


def test_stale_tracks_and_too_many_discards_fail_without_blocking(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore
) -> None:
    three_days = 3 * 24 * 60
    write_dump(
        landing,
        [
            recent_event(minutes_ago=three_days),
            recent_event(minutes_ago=three_days + 1),
            "{not json",
            '{"type": "track", "event": "no ids at all"}',
        ],
    )
    result = run_load(defs, instance)
    assert result.success  # neither check blocks: what loaded is correct
    evaluations = check_evaluations(result)

    fresh = evaluations["event_stream/tracks:tracks_fresh"]
    assert not fresh.passed and fresh.severity == dg.AssetCheckSeverity.WARN
    assert fresh.metadata["age_hours"].value > 71

    ratio = evaluations["event_stream/rudder_discards:discards_ratio"]
    assert not ratio.passed and ratio.severity == dg.AssetCheckSeverity.ERROR
    assert ratio.metadata["ratio"].value == pytest.approx(0.5)
    assert ratio.metadata["line_discards"].value == 2
    assert materializations(result)["event_stream/rudder_discards"]["discard_reasons"]


def test_discards_ratio_counts_value_discards_and_ignores_empty_loads() -> None:
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA event_load")
        conn.execute(
            "CREATE TABLE event_load.loads (load_id VARCHAR, started_at TIMESTAMPTZ, lines BIGINT, "
            "discarded BIGINT, value_discards BIGINT)"
        )
        conn.execute("INSERT INTO event_load.loads VALUES ('a', '2026-01-01 10:00+00', 100, 2, 4)")
        conn.execute("INSERT INTO event_load.loads VALUES ('b', '2026-01-01 10:30+00', 0, 0, 0)")
        outcome = checks.discards_ratio(conn, 0.05)
        # The empty load 'b' does not hide load 'a': (2 line + 4 value discards) / 100 lines.
        assert outcome.metadata["load_id"] == "a"
        assert outcome.metadata["ratio"] == pytest.approx(0.06)
        assert not outcome.passed
        assert checks.discards_ratio(conn, 0.1).passed


def test_checks_on_a_warehouse_no_load_has_touched() -> None:
    with duckdb.connect() as conn:
        assert checks.discards_ratio(conn, 0.05).passed
        fresh = checks.tracks_fresh(conn, 2.0)
        assert not fresh.passed and "no rows" in fresh.description


def test_tracks_received_in_the_future_do_not_make_a_stale_table_fresh() -> None:
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("CREATE SCHEMA event_stream")
        conn.execute("CREATE TABLE event_stream.tracks (id VARCHAR, received_at TIMESTAMPTZ)")
        conn.execute("INSERT INTO event_stream.tracks VALUES ('old', $t)", {"t": now - timedelta(days=3)})
        conn.execute("INSERT INTO event_stream.tracks VALUES ('skewed', $t)", {"t": now + timedelta(days=2)})
        stale = checks.tracks_fresh(conn, 2.0, now=now)
        assert not stale.passed
        assert stale.metadata["age_hours"] == pytest.approx(72) and stale.metadata["future_rows"] == 1
        assert "1 received in the future ignored" in stale.description
        # A few minutes ahead is clock skew, not the future.
        conn.execute("INSERT INTO event_stream.tracks VALUES ('now', $t)", {"t": now + timedelta(minutes=2)})
        fresh = checks.tracks_fresh(conn, 2.0, now=now)
        assert fresh.passed and fresh.metadata["future_rows"] == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CDP_DISCARD_RATIO_THRESHOLD", "5"),
        ("CDP_DISCARD_RATIO_THRESHOLD", "nan"),
        ("CDP_DISCARD_RATIO_THRESHOLD", "-0.1"),
        ("CDP_TRACKS_FRESHNESS_HOURS", "-3"),
        ("CDP_TRACKS_FRESHNESS_HOURS", "inf"),
    ],
)
def test_check_thresholds_out_of_range_are_refused(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        get_settings()


def test_reload_job_reloads_a_date_range_idempotently(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore, warehouse_path: Path
) -> None:
    _good_landing(landing)
    assert run_load(defs, instance).success

    def tables() -> dict[str, int]:
        with duckdb.connect(str(warehouse_path), read_only=True) as conn:
            return checks.row_counts(conn, ["tracks", "pages", "identifies", "users", "signed_up"])

    before = tables()
    config = {"start_date": "2026-11-01", "end_date": "2026-11-01"}
    for _ in range(2):  # twice: a reload is idempotent
        result = run_load(defs, instance, job="event_stream_reload_job", run_config=config)
        assert result.success
        tracks = materializations(result)["event_stream/tracks"]
        # Only the 1 November file is read again (3 of its 4 lines are tracks); the 2 November file stays.
        assert (tracks["load_files"], tracks["rows_loaded"]) == (1, 3)
        assert tracks["reload_start_date"] == tracks["reload_end_date"] == "2026-11-01"
        assert (tracks["reload_files_forgotten"], tracks["reload_files_kept_missing"]) == (1, 0)
        assert tables() == before
        assert all(e.passed for e in check_evaluations(result).values())


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-01", None, "needs both"),
        ("2026-11-31", "2026-12-01", "YYYY-MM-DD"),
        ("2026-11-05", "2026-11-01", "after end_date"),
    ],
)
def test_reload_range_rejects_bad_dates(start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(dg.Failure, match=message):
        reload_range(start, end)
    assert reload_range(None, None) is None


def test_a_missing_date_fails_the_reload_run_with_a_clear_message(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    job = defs.resolve_job_def("event_stream_reload_job")
    with pytest.raises(dg.DagsterInvalidConfigError, match="end_date"):
        job.execute_in_process(instance=instance, run_config={"start_date": "2026-11-01"})
