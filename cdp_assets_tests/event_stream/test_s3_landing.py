"""The S3 landing store (moto's S3 server on 127.0.0.1): the same load as from a folder, an etag ledger."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import boto3
import pytest

from cdp_assets.event_stream.landing import LandingError, LocalLandingStore, S3LandingStore, dump_key, landing_store
from cdp_assets.event_stream.loader import load_events
from cdp_assets.warehouse.duckdb_engine import DuckDBWarehouse
from cdp_assets_tests.conftest import SOURCE_ID, event
from cdp_assets_tests.event_stream.helpers import ES, LEDGER, gzip_lines, load, query, snapshot

T0 = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)


def _files() -> dict[str, bytes]:
    """A few dump files, one of each kind of difficulty, keyed in upload order."""
    files = {}
    contents = [
        [
            event("identify", messageId="i-1", userId="u-1", context={"traits": {"email": "a@example.com"}}),
            event(messageId="t-1", properties={"n": 1, "tags": ["a"]}),
        ],
        [event(messageId="t-2", properties={"n": "two"}), "not json", "", event(messageId="t-1")],
        [event("page", messageId="p-1", name="Home"), event(messageId="f-1", integrations={"All": False})],
    ]
    for i, lines in enumerate(contents):
        key = dump_key(SOURCE_ID, T0.replace(minute=i), f"00000000-0000-4000-8000-{i:012d}", legacy_date=i == 2)
        files[key] = gzip_lines(lines)
    truncated = gzip_lines([event(messageId=f"z-{i}", properties={"i": i}) for i in range(200)])
    key = dump_key(SOURCE_ID, T0.replace(minute=9), "00000000-0000-4000-8000-000000000009")
    files[key] = truncated[: len(truncated) // 2]
    return files


def _without_etags(snap: dict) -> dict:
    snap = dict(snap)
    snap["ledger.files"] = [row[:1] + row[2:] for row in snap["ledger.files"]]
    return snap


def test_s3_load_matches_the_local_folder_and_its_ledger_uses_etags(s3_landing, tmp_path) -> None:
    store = landing_store(s3_landing)
    assert isinstance(store, S3LandingStore)
    assert (store.bucket, store.prefix) == (s3_landing.removeprefix("s3://").split("/")[0], "events")
    local = LocalLandingStore(tmp_path / "local-landing")
    files = _files()
    for key, data in files.items():
        store.put(key, data)
        local.put(key, data)
    # Objects that are not dump files, or are outside the prefix, are not listed.
    client = boto3.client("s3")
    client.put_object(Bucket=store.bucket, Key="events/README.txt", Body=b"hello")
    client.put_object(Bucket=store.bucket, Key="events/rudder-logs/src/2026-11-01/notes.csv", Body=b"a,b")
    client.put_object(Bucket=store.bucket, Key=f"other/{next(iter(files))}", Body=next(iter(files.values())))

    listed = {f.key: f for f in store.list_files()}
    assert set(listed) == set(files)
    for key, data in files.items():
        assert listed[key].size == len(data)
        assert listed[key].etag == hashlib.md5(data).hexdigest()
        assert listed[key].source_id == SOURCE_ID
        assert listed[key].upload_date == T0.date()

    s3_wh = tmp_path / "s3.duckdb"
    local_wh = tmp_path / "local.duckdb"
    from_s3 = load(store, s3_wh)
    from_local = load(local, local_wh)
    assert from_s3.landing_url == s3_landing
    counts = ("files", "lines", "loaded", "filtered", "duplicates", "discarded", "blank_lines", "value_discards")
    assert {c: getattr(from_s3, c) for c in counts} == {c: getattr(from_local, c) for c in counts}
    assert from_s3.corrupt_files == from_local.corrupt_files
    assert len(from_s3.corrupt_files) == 1
    recovered = from_s3.corrupt_files[0]["loaded"]
    assert 0 < recovered < 200
    assert (from_s3.files, from_s3.loaded, from_s3.duplicates, from_s3.filtered) == (4, 4 + recovered, 1, 1)
    assert _without_etags(snapshot(s3_wh)) == _without_etags(snapshot(local_wh))
    etags = dict(query(s3_wh, f"SELECT file_key, etag FROM {LEDGER}.files"))
    assert etags == {key: hashlib.md5(data).hexdigest() for key, data in files.items()}

    # A rerun loads nothing.
    again = load(store, s3_wh)
    assert (again.files, again.lines, again.loaded) == (0, 0, 0)

    # The same bytes uploaded again have the same etag: nothing new. Other bytes are a new version.
    first_key = next(iter(files))
    store.put(first_key, files[first_key])
    assert load(store, s3_wh).files == 0
    store.put(first_key, gzip_lines([event(messageId="t-1"), event(messageId="t-9")]))
    changed = load(store, s3_wh)
    assert (changed.files, changed.lines, changed.loaded, changed.duplicates) == (1, 2, 1, 1)
    assert query(s3_wh, f"SELECT count(*) FROM {ES}.tracks WHERE id = 't-9'")[0][0] == 1


def test_s3_errors_are_landing_errors(s3_landing) -> None:
    with pytest.raises(LandingError, match="not an S3 URL"):
        S3LandingStore("s3:///no-bucket")
    with pytest.raises(LandingError, match="unsupported landing URL"):
        landing_store("gs://bucket/prefix")
    missing = landing_store("s3://no-such-bucket-for-this-test/events")
    with pytest.raises(LandingError, match="cannot list"):
        list(missing.list_files())
    with pytest.raises(LandingError, match="cannot write"):
        missing.put("rudder-logs/x.json.gz", b"")


def test_an_object_deleted_or_replaced_after_listing_is_skipped_and_read_next_time(s3_landing, tmp_path) -> None:
    store = landing_store(s3_landing)
    keys = [dump_key(SOURCE_ID, T0.replace(minute=i), f"00000000-0000-4000-8000-{i:012d}") for i in range(3)]
    for i, key in enumerate(keys):
        store.put(key, gzip_lines([event(messageId=f"s-{i}")]))
    replaced = gzip_lines([event(messageId="s-1"), event(messageId="s-1b")])

    def change_after_listing(step: str, _data: dict) -> None:
        if step == "listed":
            store.put(keys[1], replaced)  # a new version: the one listed is not what would be read
            boto3.client("s3").delete_object(Bucket=store.bucket, Key=store._full_key(keys[2]))

    warehouse = tmp_path / "warehouse.duckdb"
    summary = load_events(store, DuckDBWarehouse(warehouse), progress=change_after_listing)
    assert (summary.files, summary.loaded) == (1, 1)
    assert sorted(s["file"] for s in summary.skipped_files) == sorted(keys[1:])
    # The new version was never recorded under the old one's etag: the next load reads all of it.
    again = load(store, warehouse)
    assert (again.files, again.loaded, again.skipped_files) == (1, 2, [])
    assert sorted(r[0] for r in query(warehouse, f"SELECT id FROM {ES}.tracks")) == ["s-0", "s-1", "s-1b"]
