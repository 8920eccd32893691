import gzip
import hashlib
import json
import random
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp_assets.event_stream.landing import LandingFile, LocalLandingStore
from cdp_assets.sandbox.event_generator import (
    BAD_REASONS,
    SOURCES,
    GenerationSummary,
    generate_events,
    rudder_id,
)
from cdp_assets.sandbox.world import build_world, normalize_email

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
EVENTS = 6000
PER_FILE = 700
BAD_FRACTION = 0.035
SOURCE_BY_ID = {spec.source_id: key for key, spec in SOURCES.items()}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PYTHON_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
FORM_PROPERTIES = {
    "page", "page_URL", "form_id", "label", "category", "conversion_page", "utm_source", "utm_medium",
    "utm_campaign", "utm_content", "utm_term", "raid", "test_user",
}  # fmt: skip


@dataclass
class Line:
    key: str
    source: str
    raw: str
    event: Any  # the parsed JSON, or None when it does not parse


@dataclass
class Dump:
    summary: GenerationSummary
    store: LocalLandingStore
    lines: list[Line]
    blank_lines: int

    def events(self, source: str | None = None) -> list[dict[str, Any]]:
        """Parsed object lines, in stream order (files sorted by upload time)."""
        return [
            line.event
            for line in self.lines
            if isinstance(line.event, dict) and (source is None or line.source == source)
        ]


def read_dump(store: LocalLandingStore, summary: GenerationSummary) -> Dump:
    lines: list[Line] = []
    blanks = 0
    files = sorted(store.list_files(), key=lambda f: (int(Path(f.key).name.split(".")[0]), f.key))
    for file in files:
        source = SOURCE_BY_ID[file.source_id or ""]
        with store.local_copy(file) as path:
            text = gzip.decompress(path.read_bytes()).decode()
        assert text.endswith("\n")
        for raw in text.split("\n")[:-1]:
            if not raw:
                blanks += 1
                continue
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                event = None
            lines.append(Line(file.key, source, raw, event))
    return Dump(summary, store, lines, blanks)


def generate(root: Path, events: int = EVENTS, **kwargs: Any) -> Dump:
    store = LocalLandingStore(root)
    options = {"start": START, "events_per_file": PER_FILE, **kwargs}
    summary = generate_events(store, events, **options)
    return read_dump(store, summary)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Dump:
    return generate(tmp_path_factory.mktemp("dump"), bad_fraction=BAD_FRACTION)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Dump:
    return generate(tmp_path_factory.mktemp("clean"), events=3000)


def good_events(dump: Dump, source: str | None = None) -> list[dict[str, Any]]:
    """Well-formed events with a known type (what a loader would load)."""
    return [e for e in dump.events(source) if e.get("type") != "bogus" and (e.get("userId") or e.get("anonymousId"))]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------- determinism


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json.gz"))}


def test_same_arguments_write_identical_keys_and_bytes(tmp_path: Path, clean: Dump) -> None:
    again = generate(tmp_path / "again", events=3000)
    assert again.summary.files == clean.summary.files
    assert tree(tmp_path / "again") == tree(clean.store.root)


def test_another_seed_writes_other_files(tmp_path: Path, clean: Dump) -> None:
    other = generate(tmp_path / "other", events=3000, seed=8)
    assert other.summary.files != clean.summary.files
    assert [line.raw for line in other.lines] != [line.raw for line in clean.lines]


# --------------------------------------------------------------------------------------------- counts


def test_exact_line_count_and_summary(dump: Dump) -> None:
    summary = dump.summary
    assert len(dump.lines) == EVENTS == summary.events
    assert sum(summary.lines_by_kind.values()) + sum(summary.bad_lines_by_reason.values()) == EVENTS
    assert sum(summary.lines_by_source.values()) == EVENTS
    assert Counter(line.source for line in dump.lines) == Counter(summary.lines_by_source)
    assert dump.blank_lines == summary.blank_lines > 0
    assert sorted(summary.files) == sorted(f.key for f in dump.store.list_files())
    assert summary.bytes_written == sum(f.size for f in dump.store.list_files())
    assert json.loads(summary.to_json())["events"] == EVENTS
    assert summary.people_used > 20
    assert summary.anonymous_visitors > 100


@pytest.mark.parametrize("events", [0, 1, 7, 250])
def test_tiny_runs_are_exact(tmp_path: Path, events: int) -> None:
    small = generate(tmp_path, events=events, bad_fraction=0.1)
    assert len(small.lines) == events


def lines_by_file(dump: Dump) -> dict[str, list[Line]]:
    by_file: dict[str, list[Line]] = defaultdict(list)
    for line in dump.lines:
        by_file[line.key].append(line)
    return by_file


def test_files_are_cut_by_size(dump: Dump) -> None:
    assert max(len(lines) for lines in lines_by_file(dump).values()) == PER_FILE


def test_files_hold_one_half_hour_and_are_uploaded_just_after(clean: Dump) -> None:
    for key, lines in lines_by_file(clean).items():
        received = [parse_time(line.event["receivedAt"]).timestamp() for line in lines]
        assert len({int(t) // 1800 for t in received}) == 1
        uploaded = int(Path(key).name.split(".")[0])
        assert 0 <= uploaded - max(received) <= 60


def test_keys_follow_the_dump_layout_with_some_legacy_dates(dump: Dump) -> None:
    files = list(dump.store.list_files())
    assert {f.source_id for f in files} == {spec.source_id for spec in SOURCES.values()}
    folders = [Path(f.key).parent.name for f in files]
    assert all(f.upload_date is not None for f in files)
    legacy = [name for name in folders if re.fullmatch(r"\d\d-\d\d-\d{4}", name)]
    assert 0 < len(legacy) < len(folders) / 5
    sample: LandingFile = files[0]
    assert sample.key.startswith(f"rudder-logs/{sample.source_id}/")


def test_default_start_ends_the_stream_about_now(tmp_path: Path) -> None:
    store = LocalLandingStore(tmp_path)
    summary = generate_events(store, 40)
    last = max(parse_time(json.loads(line)["receivedAt"]) for line in _raw_lines(store))
    assert abs(datetime.now(UTC) - last) < timedelta(minutes=3)
    assert summary.end is not None and summary.end.second == 0


def _raw_lines(store: LocalLandingStore) -> list[str]:
    lines = []
    for file in store.list_files():
        with store.local_copy(file) as path:
            lines += [line for line in gzip.decompress(path.read_bytes()).decode().splitlines() if line]
    return lines


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    store = LocalLandingStore(tmp_path)
    with pytest.raises(ValueError):
        generate_events(store, 10, bad_fraction=0.9)
    with pytest.raises(ValueError):
        generate_events(store, -1)
    with pytest.raises(ValueError):
        generate_events(store, 10, events_per_file=0)


# --------------------------------------------------------------------------------------------- shapes


def test_rudder_id_formula() -> None:
    assert rudder_id("user-1", "anon-1") == "8eee6191-bcf5-4249-8ea0-586287986e2a"
    assert rudder_id("usr_1", None) == rudder_id("usr_1", "")


def test_gateway_fields_on_every_event(clean: Dump) -> None:
    for event in clean.events():
        assert uuid.UUID(event["messageId"]).version == 4
        assert RFC3339_MS.match(event["receivedAt"])
        assert event["request_ip"]
        key = f"{event.get('userId') or ''}:{event.get('anonymousId') or ''}"
        expected = uuid.UUID(bytes=hashlib.md5(key.encode()).digest(), version=4)
        assert event["rudderId"] == str(expected)
    received = [parse_time(e["receivedAt"]) for e in clean.events()]
    assert min(received) >= START


def test_web_events_have_the_js_sdk_v3_shape(clean: Dump) -> None:
    web = clean.events("web")
    page_keys = {"path", "referrer", "referring_domain", "search", "title", "url", "initial_referrer",
                 "initial_referring_domain"}  # fmt: skip
    for event in web:
        assert event["channel"] == "web"
        assert "timestamp" not in event
        assert RFC3339_MS.match(event["sentAt"]) and RFC3339_MS.match(event["originalTimestamp"])
        context = event["context"]
        assert context["library"]["name"] == context["app"]["name"] == "RudderLabs JavaScript SDK"
        assert context["os"] == {"name": "", "version": ""}
        assert re.fullmatch(r"GMT[+-]\d{4}", context["timezone"])
        assert {"userAgent", "locale", "screen", "campaign", "traits", "sessionId"} <= set(context)
        assert page_keys <= set(context["page"])
        assert event["integrations"] == {"All": True}
        if event["type"] != "track":
            assert event["event"] is None
        if event["type"] in ("identify", "group", "alias"):
            assert event["properties"] is None
    assert any(e["context"].get("sessionStart") for e in web)
    assert any(e["context"]["campaign"] for e in web)


def test_some_browsers_have_skewed_clocks(clean: Dump) -> None:
    skews = [abs((parse_time(e["sentAt"]) - parse_time(e["receivedAt"])).total_seconds()) for e in clean.events("web")]
    assert any(s > 2 for s in skews)
    assert sorted(skews)[len(skews) // 2] < 1


def test_python_events_have_the_python_sdk_shape(clean: Dump) -> None:
    events = clean.events("python")
    assert events
    for event in events:
        assert event["context"]["library"] == {"name": "analytics-python", "version": "2.1.9"}
        assert PYTHON_ISO.match(event["timestamp"])
        assert "originalTimestamp" not in event and "sentAt" not in event
        assert "anonymousId" in event and event["anonymousId"] is None
        assert event["channel"] == "server"
        if event["type"] == "identify":
            assert "traits" not in event and event["context"]["traits"]


def test_node_events_have_the_node_sdk_shape(clean: Dump) -> None:
    events = clean.events("server")
    assert {e["type"] for e in events} == {"track", "identify"}
    for event in events:
        assert event["context"]["library"]["name"] == "analytics-node"
        assert "timestamp" not in event and event["sentAt"] and event["originalTimestamp"]
        if event["type"] == "identify":
            assert event["traits"] == event["context"]["traits"]
            assert event["traits"]["email"] == normalize_email(event["traits"]["email"])


def test_server_integrations_routing_variants(dump: Dump, clean: Dump) -> None:
    allowed = ({"All": True}, {"All": True, "Snowflake": False}, {"All": False, "Customer IO": True})
    for event in good_events(dump) + good_events(clean):
        assert event["integrations"] in allowed
        if event["channel"] == "web":
            assert event["integrations"] == {"All": True}


def test_properties_are_nested_and_evolve(clean: Dump) -> None:
    web = clean.events("web")
    carts = [e["properties"] for e in web if e.get("event") in ("pricing_calculated", "checkout_started")]
    assert carts
    assert all(isinstance(p["products"], list) and isinstance(p["cart"], dict) for p in carts)
    assert all(isinstance(p["revenue"], float) for p in carts)
    pages = sorted((e for e in web if e["type"] == "page"), key=lambda e: e["receivedAt"])
    half = len(pages) // 2
    assert not any("content_group" in p["properties"] for p in pages[: half // 2])
    assert all("content_group" in p["properties"] for p in pages[-half // 2 :])


# ------------------------------------------------------------------------------------------ journeys


def test_anonymous_ids_merge_with_email_then_user_id(dump: Dump) -> None:
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(good_events(dump, "web"), key=lambda e: e["receivedAt"]):
        history[event["anonymousId"]].append(event)

    def journey(events: list[dict[str, Any]]) -> bool:
        states = []
        for e in events:
            email = e["context"]["traits"].get("email")
            states.append(2 if e.get("userId") else 1 if email else 0)
        return states[0] == 0 and 1 in states and 2 in states and states.index(1) < states.index(2)

    merged = [anon for anon, events in history.items() if journey(events)]
    assert len(merged) >= 3


def test_some_people_log_in_on_a_colleagues_laptop(tmp_path: Path) -> None:
    """A shared device: two signed-up colleagues, each identified on it; it stays its owner's device."""
    world = build_world()
    events = good_events(generate(tmp_path, events=20000), "web")
    users_by_device: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.get("userId") and e.get("anonymousId"):
            users_by_device[e["anonymousId"]].add(e["userId"])
    shared = {device: users for device, users in users_by_device.items() if len(users) > 1}
    assert shared
    for device, users in shared.items():
        owner = world.person_by_anonymous_id(device)
        assert owner is not None and owner.user_id in users
        for user in users - {owner.user_id}:
            borrower = world.person_by_user_id(user)
            assert borrower is not None and device in borrower.borrowed_anonymous_ids
            assert borrower.company == owner.company


def test_journeys_match_the_world(dump: Dump) -> None:
    world = build_world()
    events = good_events(dump)
    names = Counter(e.get("event") for e in events if e["type"] == "track")
    for name in ("form_submit", "signed_up", "source_created", "subscription_started", "email_unsubscribed"):
        assert names[name], name
    devices_by_user: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.get("userId") and e.get("anonymousId"):
            devices_by_user[e["userId"]].add(e["anonymousId"])
    assert any(len(devices) > 1 for devices in devices_by_user.values())
    for user_id, devices in devices_by_user.items():
        person = world.person_by_user_id(user_id)
        assert person is not None and devices <= {*person.anonymous_ids, *person.borrowed_anonymous_ids}
    assert any(e["type"] == "group" and world.company(e["groupId"]) for e in events)
    assert any(e["type"] == "alias" and e["previousId"] for e in events)


def test_form_submits_carry_the_sites_properties_and_typed_emails(dump: Dump) -> None:
    world = build_world()
    submits = [e for e in good_events(dump, "web") if e.get("event") == "form_submit"]
    assert submits
    emails = []
    for event in submits:
        assert set(event["properties"]) == FORM_PROPERTIES
        assert "userId" not in event
        emails.append(event["context"]["traits"]["email"])
        assert world.person_by_email(emails[-1]) is not None
    assert any(e["properties"]["utm_source"] for e in submits)
    assert any(e["properties"]["utm_source"] is None for e in submits)
    all_emails = {e["context"]["traits"].get("email") for e in good_events(dump, "web")} - {None}
    assert any(email != normalize_email(email) for email in all_emails)
    people = [world.person_by_email(email) for email in all_emails]
    assert any(p and p.is_internal for p in people)
    assert any(p and p.is_test for p in people)


def test_consent_events_follow_the_world(dump: Dump) -> None:
    world = build_world()
    events = good_events(dump)
    unsubscribes = [e for e in events if e.get("event") == "email_unsubscribed"]
    assert unsubscribes
    for event in unsubscribes:
        assert event["properties"]["channel"] == "email"
        assert event["properties"]["source"] in ("preference_center", "email_footer")
    flags = [e for e in events if e["type"] == "identify" and "unsubscribed" in e["context"]["traits"]]
    assert any(e["context"]["traits"]["unsubscribed"] is True for e in flags)
    for event in flags:
        person = world.person_by_email(event["context"]["traits"]["email"])
        assert person is not None and person.opted_out("email") is not None


def test_source_creation_after_more_than_three_days_exists_at_full_span(tmp_path: Path) -> None:
    # With the world's own span (what a million-event run uses), world gaps become stream gaps.
    small = generate(tmp_path, events=4000, span=timedelta(days=14))
    signups, sources = {}, {}
    for e in good_events(small):
        if e.get("event") == "signed_up":
            signups[e["userId"]] = parse_time(e["receivedAt"])
        if e.get("event") == "source_created":
            sources[e["userId"]] = parse_time(e["receivedAt"])
    gaps = [sources[u] - signups[u] for u in sources if u in signups]
    assert any(g > timedelta(days=3) for g in gaps)
    assert any(g < timedelta(days=3) for g in gaps)
    assert any(u not in sources for u in signups)


# ---------------------------------------------------------------------------------------- bad input


def test_bad_lines_are_counted_and_look_like_their_reason(dump: Dump) -> None:
    reported = dump.summary.bad_lines_by_reason
    assert list(reported) == list(BAD_REASONS)
    expected_total = round(BAD_FRACTION * EVENTS)
    assert sum(reported.values()) == expected_total
    assert max(reported.values()) - min(reported.values()) <= 1

    found: Counter[str] = Counter()
    for line in dump.lines:
        event = line.event
        if event is None:
            found["invalid_json"] += 1
        elif not isinstance(event, dict):
            found["not_an_object"] += 1
        elif not (event.get("userId") or event.get("anonymousId")):
            found["missing_ids"] += 1
        elif event.get("type") == "bogus":
            found["unknown_type"] += 1
        elif len(line.raw.encode()) > 32 * 1024:
            found["oversized"] += 1
        elif isinstance((event.get("properties") or {}).get("revenue"), str):
            found["type_conflict"] += 1
    ids = Counter(e["messageId"] for e in dump.events() if "messageId" in e)
    found["duplicate"] = sum(count - 1 for count in ids.values())
    assert found == Counter(reported)


def test_revenue_is_numeric_before_the_first_type_conflict(dump: Dump) -> None:
    pricing = [e for e in dump.events("web") if e.get("event") == "pricing_calculated"]
    pricing.sort(key=lambda e: e["receivedAt"])
    revenues = [isinstance(e["properties"]["revenue"], str) for e in pricing]
    assert revenues[0] is False and True in revenues


def test_duplicates_are_exact_and_some_land_in_a_later_file(dump: Dump) -> None:
    seen: dict[str, Line] = {}
    later_file = 0
    for line in dump.lines:
        if not isinstance(line.event, dict) or "messageId" not in line.event:
            continue
        first = seen.setdefault(line.event["messageId"], line)
        if first is not line:
            assert first.raw == line.raw and first.source == line.source
            later_file += first.key != line.key
    assert later_file > 0


def test_bad_lines_are_spread_across_files(dump: Dump) -> None:
    bad_files = {line.key for line in dump.lines if not isinstance(line.event, dict)}
    assert len(bad_files) >= 5
    assert {SOURCE_BY_ID[Path(key).name.split(".")[1]] for key in bad_files} == set(SOURCES)


def test_clean_runs_have_no_bad_or_blank_lines(clean: Dump) -> None:
    assert sum(clean.summary.bad_lines_by_reason.values()) == 0
    assert clean.blank_lines == 0
    assert all(isinstance(line.event, dict) for line in clean.lines)


def test_routing_share_of_server_events() -> None:
    # Too rare to count on in a small stream, so the share is checked on the server builder itself.
    from cdp_assets.sandbox.event_generator import _Ids, _Server

    server = _Server(random.Random(1), _Ids(random.Random(2)))
    routes = Counter(json.dumps(server._integrations(), sort_keys=True) for _ in range(100_000))
    assert 0.004 < routes['{"All": true, "Snowflake": false}'] / 100_000 < 0.006
    assert 0.001 < routes['{"All": false, "Customer IO": true}'] / 100_000 < 0.003
