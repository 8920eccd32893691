"""The landing sensor's cursor round trip, and the schedule."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg

from cdp_assets.defs.automation import LandingCursor, new_files, run_key_for
from cdp_assets.defs.resources import LandingResource
from cdp_assets.event_stream.landing import LandingFile, LocalLandingStore
from cdp_assets_tests.conftest import event, write_dump

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _file(key: str, seconds: float = 0, etag: str = "e1") -> LandingFile:
    return LandingFile(key=key, size=10, etag=etag, modified=T0 + timedelta(seconds=seconds))


def _backdate(landing: LocalLandingStore, key: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(landing.root / key, (then, then))


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": LandingResource()})
    return sensor.evaluate_tick(context)


def test_sensor_requests_one_run_per_batch_of_new_files(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore
) -> None:
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "event_stream_job"

    empty = _tick(sensor, instance, None)
    assert not empty.run_requests and "no new landing files" in (empty.skip_message or "")

    first_key = write_dump(landing, [event(), event()])
    _backdate(landing, first_key, 60)  # so that the file after it is not in the future either
    first = _tick(sensor, instance, None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags["cdp/new_files"] == "1"
    assert first_key in request.tags["cdp/new_files_keys"]
    cursor = json.loads(first.cursor)
    assert set(cursor) == {"modified", "keys"} and cursor["keys"] == [first_key]  # a mark, not the key list

    # The same tick evaluated again (e.g. after a crash before the cursor was saved) asks for the same run
    # key, which Dagster launches only once.
    assert _tick(sensor, instance, None).run_requests[0].run_key == request.run_key

    again = _tick(sensor, instance, first.cursor)
    assert not again.run_requests and again.skip_message
    assert again.cursor in (None, first.cursor)

    second_key = write_dump(landing, [event()])
    later = os.stat(landing.root / first_key).st_mtime + 5  # strictly after the mark, on any file system
    os.utime(landing.root / second_key, (later, later))
    second = _tick(sensor, instance, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != request.run_key
    assert second.run_requests[0].tags["cdp/new_files"] == "1"
    assert json.loads(second.cursor)["keys"] == [second_key]
    assert not _tick(sensor, instance, second.cursor).run_requests


def test_cursor_keeps_only_the_keys_at_the_high_water_mark() -> None:
    cursor = LandingCursor()
    batch = [_file("a", 0), _file("b", 5), _file("c", 5)]
    assert new_files(batch, cursor) == batch
    cursor = cursor.advance(batch)
    assert cursor.modified == T0 + timedelta(seconds=5) and cursor.keys == {"b", "c"}
    assert LandingCursor.parse(cursor.to_json()) == cursor

    # Another file in the same instant is new; one after it moves the mark and forgets the old keys.
    same_instant = [*batch, _file("d", 5)]
    assert [f.key for f in new_files(same_instant, cursor)] == ["d"]
    cursor = cursor.advance(new_files(same_instant, cursor))
    assert cursor.keys == {"b", "c", "d"}
    later = [*same_instant, _file("e", 9)]
    cursor = cursor.advance(new_files(later, cursor))
    assert (cursor.modified, cursor.keys) == (T0 + timedelta(seconds=9), {"e"})
    assert new_files(later, cursor) == []
    # A file rewritten later (a new version) is new again.
    assert [f.key for f in new_files([_file("a", 20, etag="e2")], cursor)] == ["a"]


def test_a_file_stamped_in_the_future_does_not_hide_the_files_after_it() -> None:
    now = T0 + timedelta(seconds=10)
    cursor = LandingCursor().advance([_file("a", 0), _file("skewed", 3600)], now=now)
    assert cursor.modified == now
    later = [_file("a", 0), _file("skewed", 3600), _file("b", 20)]
    assert [f.key for f in new_files(later, cursor)] == ["b", "skewed"]
    assert LandingCursor.parse("{}") == LandingCursor() == LandingCursor.parse(LandingCursor().to_json())


def test_sensor_asks_for_no_second_run_while_one_is_queued(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LocalLandingStore
) -> None:
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    first_key = write_dump(landing, [event()])
    _backdate(landing, first_key, 60)
    # (Not started yet: a QUEUED run needs a code location origin, which a test instance has not.)
    queued = dg.DagsterRun(
        job_name="event_stream_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.NOT_STARTED
    )
    instance.add_run(queued)
    tick = _tick(sensor, instance, None)
    assert not tick.run_requests
    assert queued.run_id in (tick.skip_message or "")
    assert json.loads(tick.cursor)["keys"] == [first_key]  # those files are the queued run's: the mark moves on
    # Once no run waits, new files get a run of their own.
    instance.report_run_canceled(queued)
    second_key = write_dump(landing, [event()])
    later = os.stat(landing.root / first_key).st_mtime + 5
    os.utime(landing.root / second_key, (later, later))
    second = _tick(sensor, instance, tick.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].tags["cdp/new_files_keys"] == second_key


def test_run_key_depends_on_the_files_and_their_versions() -> None:
    files = [_file("a"), _file("b")]
    assert run_key_for(files) == run_key_for(list(reversed(files)))
    assert run_key_for(files) != run_key_for([_file("a"), _file("b", etag="e2")])
    assert run_key_for(files) != run_key_for([_file("a")])


def test_schedule_runs_the_event_job_every_30_minutes_utc(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    schedule = defs.resolve_schedule_def("event_stream_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("*/30 * * * *", "UTC")
    assert schedule.job_name == "event_stream_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=T0 + timedelta(minutes=30))
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1
    assert data.run_requests[0].tags["cdp/trigger"] == "schedule"


def test_sensor_on_s3_notices_each_file_once(
    defs: dg.Definitions, instance: dg.DagsterInstance, s3_landing: str
) -> None:
    """The production path: S3 `LastModified` has one-second resolution, so files written in quick
    succession share the high-water mark; the keys kept at that instant tell them apart."""
    from cdp_assets.event_stream.landing import landing_store

    store = landing_store(s3_landing, os.environ["AWS_ENDPOINT_URL"])
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    cursor = None
    seen: set[str] = set()
    for _ in range(3):
        key = write_dump(store, [event()])
        tick = _tick(sensor, instance, cursor)
        assert [r.tags["cdp/new_files"] for r in tick.run_requests] == ["1"]
        assert key in tick.run_requests[0].tags["cdp/new_files_keys"]
        seen.add(tick.run_requests[0].run_key)
        cursor = tick.cursor
    assert len(seen) == 3
    assert not _tick(sensor, instance, cursor).run_requests
