import random
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from cdp_assets.sandbox.world import (
    EPOCH,
    WORLD_END,
    Person,
    World,
    build_world,
    is_internal_email,
    normalize_email,
    typed_email,
)

# A fresh build, bypassing the cache, for the tests that compare two builds.
_fresh = build_world.__wrapped__


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def test_same_arguments_give_the_same_world_whatever_the_global_random_state() -> None:
    random.seed(1)
    first = _fresh(seed=3, people=300, companies=40)
    random.seed(2)
    second = _fresh(seed=3, people=300, companies=40)
    assert first.people == second.people
    assert first.companies == second.companies


def test_another_seed_gives_another_world() -> None:
    assert _fresh(seed=3, people=300, companies=40).people != _fresh(seed=4, people=300, companies=40).people


def test_repeated_calls_share_one_cached_world() -> None:
    assert build_world() is build_world()


def test_default_world_builds_fast() -> None:
    began = time.perf_counter()
    _fresh()
    # 0.5 s is the target; the margin absorbs a loaded CI machine.
    assert time.perf_counter() - began < 1.5


def test_ids_are_stable_strings(world: World) -> None:
    assert [c.company_id for c in world.companies[:3]] == ["cmp_0001", "cmp_0002", "cmp_0003"]
    assert world.people[0].person_id == "per_00001"
    assert world.company("cmp_0002") == world.companies[1]
    for person in world.people:
        assert (person.user_id is not None) == (person.lifecycle_stage in ("signed_up", "customer"))
        if person.user_id:
            assert person.user_id == "usr_" + person.person_id.removeprefix("per_")
        assert 1 <= len(person.anonymous_ids) <= 3
        assert all(uuid.UUID(a).version == 4 for a in person.anonymous_ids)
    devices = [a for p in world.people for a in p.anonymous_ids]
    assert len(devices) == len(set(devices))


def test_emails_are_canonical_unique_and_found_however_typed(world: World) -> None:
    emails = [p.email for p in world.people]
    assert len(set(emails)) == len(emails)
    assert all(e == normalize_email(e) for e in emails)
    person = world.people[10]
    for variant in (person.email.upper(), f"  {person.email} ", person.email.capitalize()):
        assert world.person_by_email(variant) is person
    assert world.person_by_email("nobody@nowhere.example") is None


def test_typed_emails_vary_but_normalise_back() -> None:
    rng = random.Random(5)
    variants = {typed_email("jane.doe@acme.com", rng) for _ in range(200)}
    assert {normalize_email(v) for v in variants} == {"jane.doe@acme.com"}
    assert any(v != v.strip() for v in variants)
    assert any(v != v.lower() for v in variants)
    assert "jane.doe@acme.com" in variants


def test_internal_and_test_shares(world: World) -> None:
    people = world.people
    internal = [p for p in people if p.is_internal]
    test = [p for p in people if p.is_test]
    assert len(internal) == round(0.03 * len(people))
    assert len(test) == round(0.02 * len(people))
    assert not set(internal) & set(test)
    assert all(is_internal_email(p.email) for p in internal)
    domains = Counter(p.email_domain for p in internal)
    assert domains["rudderstack.com"] and domains["rudderlabs.com"]
    assert any("+ruddertest" in p.email for p in internal)
    assert {p.email_domain for p in test} <= {"example.com", "test.com", "mailinator.com"}
    assert not any(p.is_internal for p in people if p not in internal)


def test_people_share_companies(world: World) -> None:
    sizes = Counter(p.company.company_id for p in world.people)
    assert max(sizes.values()) >= 5
    biggest = sizes.most_common(1)[0][0]
    assert len(world.people_at(biggest)) == sizes[biggest]
    # Internal people work at the company itself.
    staff = [p for p in world.people if p.email.endswith("@rudderstack.com")]
    assert staff and all(p.company.domain == "rudderstack.com" for p in staff)


def test_lifecycle_milestones_are_ordered_and_inside_the_history(world: World) -> None:
    stages = Counter(p.lifecycle_stage for p in world.people)
    assert set(stages) == {"visitor", "lead", "signed_up", "customer"}
    for p in world.people:
        moments = [p.created_at, p.lead_at, p.signed_up_at, p.customer_at]
        present = [m for m in moments if m is not None]
        assert present == sorted(present)
        assert all(EPOCH <= m < WORLD_END for m in present)
        assert (p.lead_at is not None) >= (p.lifecycle_stage == "lead")
        assert (p.customer_at is not None) == (p.lifecycle_stage == "customer")
        assert p.plan == {"visitor": None, "lead": None, "signed_up": "free"}.get(p.lifecycle_stage, p.plan)
        if p.lifecycle_stage == "customer":
            assert p.plan in ("pro", "enterprise")
        assert p.created_source == (p.source_created_at is not None)
        assert p.requested_enterprise_quote == (p.quote_requested_at is not None)
        if p.source_created_at is not None:
            assert p.signed_up_at is not None and p.source_created_at > p.signed_up_at


def test_source_creation_has_quick_late_and_never(world: World) -> None:
    signed = [p for p in world.people if p.signed_up_at is not None]
    gaps = [p.source_created_at - p.signed_up_at for p in signed if p.source_created_at and p.signed_up_at]
    assert any(g <= timedelta(days=3) for g in gaps)
    assert any(g > timedelta(days=3) for g in gaps)
    assert any(not p.created_source for p in signed)
    assert any(p.requested_enterprise_quote for p in signed)


def _email_changes(person: Person) -> list[bool]:
    return [c.subscribed for c in person.consent_changes if c.channel == "email"]


def test_consent_history(world: World) -> None:
    people = world.people
    opted_out = [p for p in people if False in _email_changes(p)]
    assert len(opted_out) == round(0.08 * len(people))
    back_in = [p for p in opted_out if _email_changes(p)[-1]]
    assert 0 < len(back_in) < len(opted_out)
    for p in people:
        times = [c.at for c in p.consent_changes]
        assert times == sorted(times)
        for change in p.consent_changes:
            assert EPOCH <= change.at < WORLD_END
            # Events can only record a change for someone the site or backend can identify.
            if change.system == "backend":
                assert p.user_id is not None
            if change.system == "web":
                assert p.lifecycle_stage != "visitor"
    person = back_in[0]
    out, back = [c for c in person.consent_changes if c.channel == "email"][-2:]
    assert person.consent("email", at=out.at) is False
    assert person.opted_out("email", at=back.at - timedelta(seconds=1))
    assert person.consent("email", at=back.at) is True
    assert person.consent("email", at=EPOCH) is None
    assert any(c.channel in ("sms", "push") for p in people for c in p.consent_changes)
