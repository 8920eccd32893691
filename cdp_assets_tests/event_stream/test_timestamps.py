"""The four timestamps: RudderStack's clock-skew rule and its fallbacks (processor enhanceWithTimeFields)."""

from __future__ import annotations

from datetime import datetime

from cdp_assets_tests.conftest import event, write_dump
from cdp_assets_tests.event_stream.helpers import load, row


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_timestamps(landing, warehouse_path) -> None:
    lines = [
        # The reference's worked example: the device's clock offset (1.724 s) is removed.
        event(
            messageId="skew",
            originalTimestamp="2021-07-26T07:00:43.400Z",
            sentAt="2021-07-26T07:00:45.124Z",
            receivedAt="2021-07-26T07:00:45.558Z",
        ),
        # A device clock an hour ahead, in another zone.
        event(
            messageId="skew-zone",
            originalTimestamp="2021-07-26T09:00:00.000+01:00",
            sentAt="2021-07-26T09:00:02.000+01:00",
            receivedAt="2021-07-26T07:00:03.000Z",
        ),
        # An explicit timestamp is kept, cut to milliseconds.
        event(
            messageId="explicit",
            timestamp="2021-07-26T06:59:00.123456+00:00",
            originalTimestamp="2021-07-26T07:00:43.400Z",
            sentAt="2021-07-26T07:00:45.124Z",
            receivedAt="2021-07-26T07:00:45.558Z",
        ),
        # What the Python SDK sends: an explicit timestamp and neither originalTimestamp nor sentAt.
        event(
            messageId="python",
            timestamp="2026-11-27T07:36:52.329032+00:00",
            originalTimestamp=None,
            sentAt=None,
            receivedAt="2026-11-27T07:36:53.001Z",
            context={"library": {"name": "analytics-python", "version": "2.1.9"}},
            channel="server",
        ),
        # Nothing but receivedAt.
        event(messageId="bare", originalTimestamp=None, sentAt=None, receivedAt="2026-11-01T10:00:00.500Z"),
        # An unparseable timestamp is ignored like a missing one.
        event(messageId="garbage", timestamp="yesterday"),
        # So is one that is not a point in time.
        event(messageId="infinite", sentAt="infinity"),
        # Cut to the millisecond before 1970 too: down, to the earlier one.
        event(messageId="before-1970", timestamp="1969-12-31T23:59:59.9995Z"),
        # A device clock so far off that the correction leaves the timestamp range: the server's time.
        event(
            messageId="far-off",
            originalTimestamp="294000-01-01T00:00:00Z",
            sentAt="0001-01-01T00:00:00Z",
            receivedAt="2026-11-01T10:00:00.500Z",
        ),
    ]
    write_dump(landing, lines)
    load(landing, warehouse_path)

    skew = row(warehouse_path, "tracks", "skew")
    assert skew["timestamp"] == _ts("2021-07-26T07:00:43.834Z")
    assert skew["original_timestamp"] == _ts("2021-07-26T07:00:43.400Z")
    assert skew["sent_at"] == _ts("2021-07-26T07:00:45.124Z")
    assert skew["received_at"] == _ts("2021-07-26T07:00:45.558Z")

    assert row(warehouse_path, "tracks", "skew-zone")["timestamp"] == _ts("2021-07-26T07:00:01.000Z")

    explicit = row(warehouse_path, "tracks", "explicit")
    assert explicit["timestamp"] == _ts("2021-07-26T06:59:00.123Z")
    assert explicit["original_timestamp"] == _ts("2021-07-26T07:00:43.400Z")

    python = row(warehouse_path, "tracks", "python")
    assert python["timestamp"] == _ts("2026-11-27T07:36:52.329Z")
    assert python["original_timestamp"] == python["sent_at"] == python["received_at"] == _ts("2026-11-27T07:36:53.001Z")
    assert python["context_source_type"] == "Python"
    assert python["channel"] == "server"

    bare = row(warehouse_path, "tracks", "bare")
    received = _ts("2026-11-01T10:00:00.500Z")
    assert bare["timestamp"] == bare["original_timestamp"] == bare["sent_at"] == bare["received_at"] == received

    assert row(warehouse_path, "tracks", "garbage")["timestamp"] == _ts("2026-11-01T10:00:00.300Z")

    infinite = row(warehouse_path, "tracks", "infinite")
    assert infinite["sent_at"] == infinite["received_at"] == _ts("2026-11-01T10:00:00.500Z")
    assert infinite["timestamp"] == infinite["original_timestamp"] == _ts("2026-11-01T10:00:00.000Z")

    assert row(warehouse_path, "tracks", "before-1970")["timestamp"] == _ts("1969-12-31T23:59:59.999Z")

    far_off = row(warehouse_path, "tracks", "far-off")
    assert far_off["timestamp"] == far_off["received_at"] == _ts("2026-11-01T10:00:00.500Z")
    assert far_off["sent_at"] == _ts("0001-01-01T00:00:00Z")


def test_an_event_without_received_at_gets_the_upload_time(landing, warehouse_path) -> None:
    key = write_dump(landing, [event(messageId="no-received", receivedAt=None, sentAt=None, originalTimestamp=None)])
    load(landing, warehouse_path)
    uploaded = (landing.root / key).stat().st_mtime
    r = row(warehouse_path, "tracks", "no-received")
    assert abs(r["received_at"].timestamp() - uploaded) < 0.001
    assert r["timestamp"] == r["sent_at"] == r["original_timestamp"] == r["received_at"]
