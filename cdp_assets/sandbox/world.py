"""One deterministic world of companies and people behind every sandbox data set.

The event generator and the local stand-ins of Salesforce, Stripe and Customer.io all seed their data
from the same `World`, so one person shows up with the same email as a web visitor, a Salesforce lead
or contact, a Stripe customer and a Customer.io person. That overlap is what identity resolution and
the consent model are tested against, so the world also carries the ground truth they should recover:
who signed up when, who is internal or a test account, and every consent change with where it was
recorded.

Everything derives from `random.Random(seed)` and fixed offsets from `EPOCH`, never the wall clock, so
a world is identical on every machine and run. People's journeys happen inside
`[EPOCH, EPOCH + HISTORY)`; the event generator maps that window onto whatever span it writes.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import ClassVar, Literal

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
HISTORY = timedelta(days=14)
WORLD_END = EPOCH + HISTORY

Stage = Literal["visitor", "lead", "signed_up", "customer"]
Channel = Literal["email", "sms", "push"]
# Where a consent change is recorded, which decides what data set shows it: "web" and "backend" become
# events (JS SDK / Python backend), "customerio" and "salesforce" exist only in that tool's data.
ConsentSystem = Literal["web", "backend", "customerio", "salesforce"]

STAGES: tuple[Stage, ...] = ("visitor", "lead", "signed_up", "customer")
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")
PLANS = ("free", "pro", "enterprise")
INTERNAL_DOMAINS = ("rudderstack.com", "rudderlabs.com")
TEST_DOMAINS = ("example.com", "test.com", "mailinator.com")
FREE_MAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me")

# The company's own transformation-library rule (see the data-stack overview): a match is internal.
_INTERNAL_EMAIL = re.compile(r"@(rudderlabs|rudderstack)|\+ruddertest")

INTERNAL_SHARE = 0.03
TEST_SHARE = 0.02
EMAIL_OPT_OUT_SHARE = 0.08
RESUBSCRIBE_SHARE = 0.25
# Signed-up people who also log in on a colleague's laptop (a shared device identity must not merge).
SHARED_DEVICE_SHARE = 0.03

_FIRST_NAMES = (
    "Aarav",
    "Abigail",
    "Adrian",
    "Aisha",
    "Alejandro",
    "Amara",
    "Ana",
    "Arjun",
    "Ava",
    "Benjamin",
    "Camila",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "Diego",
    "Elena",
    "Emma",
    "Ethan",
    "Fatima",
    "Felix",
    "Freya",
    "Gabriel",
    "Grace",
    "Hana",
    "Hannah",
    "Isabella",
    "Ivan",
    "James",
    "Jin",
    "Julia",
    "Kai",
    "Karan",
    "Laura",
    "Leon",
    "Liam",
    "Lucas",
    "Maya",
    "Mei",
    "Mia",
    "Mohammed",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rahul",
    "Sakura",
    "Samuel",
    "Sara",
    "Sofia",
    "Tom",
    "Valentina",
    "William",
    "Yuki",
    "Zoe",
    "Zara",
    "Lars",
    "Ingrid",
    "Kwame",
)
_LAST_NAMES = (
    "Adams",
    "Andersen",
    "Bauer",
    "Brown",
    "Chen",
    "Costa",
    "Das",
    "Dubois",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hansen",
    "Hernandez",
    "Ito",
    "Jansen",
    "Johnson",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Martinez",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Patel",
    "Perez",
    "Petrov",
    "Rossi",
    "Santos",
    "Schmidt",
    "Shah",
    "Silva",
    "Singh",
    "Smith",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thomas",
    "Van Dijk",
    "Wang",
    "Weber",
    "Williams",
    "Wilson",
    "Yamamoto",
    "Zhang",
)
_COMPANY_HEADS = (
    "Acme",
    "Apex",
    "Arcadia",
    "Beacon",
    "Bluefin",
    "Bright",
    "Cascade",
    "Cedar",
    "Cobalt",
    "Copper",
    "Delta",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fjord",
    "Granite",
    "Harbor",
    "Helix",
    "Horizon",
    "Indigo",
    "Juniper",
    "Keystone",
    "Lumen",
    "Maple",
    "Meridian",
    "Nimbus",
    "Northwind",
    "Nova",
    "Orbit",
    "Pine",
    "Quartz",
    "Redwood",
    "Sable",
    "Summit",
    "Tidal",
    "Vertex",
    "Willow",
    "Zenith",
)
_COMPANY_TAILS = (
    "Analytics",
    "Apps",
    "Bank",
    "Bio",
    "Cloud",
    "Commerce",
    "Data",
    "Dynamics",
    "Energy",
    "Foods",
    "Games",
    "Health",
    "Insurance",
    "Labs",
    "Logistics",
    "Media",
    "Mobility",
    "Networks",
    "Pay",
    "Retail",
    "Robotics",
    "Security",
    "Software",
    "Systems",
    "Travel",
)
_INDUSTRIES = (
    "Software",
    "E-commerce",
    "Financial Services",
    "Healthcare",
    "Media",
    "Gaming",
    "Logistics",
    "Education",
    "Travel",
    "Retail",
    "Telecommunications",
    "Manufacturing",
)
_COUNTRIES = ("US", "GB", "DE", "IN", "FR", "CA", "NL", "BR", "AU", "SG")
_COUNTRY_WEIGHTS = (40, 12, 9, 10, 6, 6, 4, 5, 5, 3)
_TITLES = (
    "Data Engineer",
    "Senior Data Engineer",
    "Analytics Engineer",
    "Head of Data",
    "VP Engineering",
    "CTO",
    "Software Engineer",
    "Product Manager",
    "Growth Marketer",
    "Marketing Operations Manager",
    "Director of Marketing",
    "Data Analyst",
    "Founder",
    "Engineering Manager",
    "Solutions Architect",
)
_EMPLOYEE_BUCKETS = ((1, 10), (11, 50), (51, 200), (201, 1000), (1001, 5000), (5001, 50000))
_EMPLOYEE_WEIGHTS = (15, 30, 25, 18, 8, 4)
_DIAL_CODES = {
    "US": "1",
    "CA": "1",
    "GB": "44",
    "DE": "49",
    "IN": "91",
    "FR": "33",
    "NL": "31",
    "BR": "55",
    "AU": "61",
    "SG": "65",
}


@dataclass(frozen=True)
class Company:
    company_id: str
    name: str
    domain: str
    industry: str
    employees: int
    country: str
    created_at: datetime


@dataclass(frozen=True)
class ConsentChange:
    """One change of a person's permission to be contacted on a channel."""

    at: datetime
    channel: Channel
    subscribed: bool
    source: str
    system: ConsentSystem


@dataclass(frozen=True)
class Person:
    person_id: str
    first_name: str
    last_name: str
    email: str
    company: Company
    title: str
    phone: str | None
    country: str
    user_id: str | None
    anonymous_ids: tuple[str, ...]
    lifecycle_stage: Stage
    created_at: datetime
    lead_at: datetime | None
    signed_up_at: datetime | None
    customer_at: datetime | None
    plan: str | None
    requested_enterprise_quote: bool
    quote_requested_at: datetime | None
    created_source: bool
    source_created_at: datetime | None
    consent_changes: tuple[ConsentChange, ...]
    is_internal: bool
    is_test: bool
    # Devices of colleagues this person also logged in on (each is still its owner's: `anonymous_ids`).
    borrowed_anonymous_ids: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[1]

    def consent(self, channel: Channel, at: datetime | None = None) -> bool | None:
        """Subscribed (True), opted out (False) or never stated (None) on `channel`, as of `at`."""
        state: bool | None = None
        for change in self.consent_changes:
            if change.channel == channel and (at is None or change.at <= at):
                state = change.subscribed
        return state

    def opted_out(self, channel: Channel = "email", at: datetime | None = None) -> bool:
        return self.consent(channel, at) is False

    def email_as_typed(self, rng: random.Random) -> str:
        return typed_email(self.email, rng)


@dataclass(frozen=True, eq=False)
class World:
    seed: int
    companies: tuple[Company, ...]
    people: tuple[Person, ...]
    _by_email: Mapping[str, Person] = field(repr=False)
    _by_user_id: Mapping[str, Person] = field(repr=False)
    _by_anonymous_id: Mapping[str, Person] = field(repr=False)
    _by_company: Mapping[str, tuple[Person, ...]] = field(repr=False)

    # The window every person's journey happens in.
    start: ClassVar[datetime] = EPOCH
    end: ClassVar[datetime] = WORLD_END

    def person_by_email(self, email: str) -> Person | None:
        """The person behind an email as anyone typed it (case and surrounding blanks ignored)."""
        return self._by_email.get(normalize_email(email))

    def person_by_user_id(self, user_id: str) -> Person | None:
        return self._by_user_id.get(user_id)

    def person_by_anonymous_id(self, anonymous_id: str) -> Person | None:
        return self._by_anonymous_id.get(anonymous_id)

    def people_at(self, company_id: str) -> tuple[Person, ...]:
        return self._by_company.get(company_id, ())

    def company(self, company_id: str) -> Company:
        # company ids are 1-based positions, so no index is needed
        return self.companies[int(company_id.removeprefix("cmp_")) - 1]

    def signed_up(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.user_id is not None)


def normalize_email(raw: str) -> str:
    """The canonical form identity resolution keys on: trimmed and lower-cased."""
    return raw.strip().lower()


def is_internal_email(email: str) -> bool:
    return _INTERNAL_EMAIL.search(normalize_email(email)) is not None


def is_test_email(email: str) -> bool:
    return normalize_email(email).rsplit("@", 1)[-1] in TEST_DOMAINS


def typed_email(email: str, rng: random.Random) -> str:
    """`email` as a person might type it into a form: mostly as is, sometimes with case or blanks."""
    roll = rng.random()
    if roll < 0.6:
        return email
    local, domain = email.split("@", 1)
    if roll < 0.7:
        return f"{local[:1].upper()}{local[1:]}@{domain[:1].upper()}{domain[1:]}"
    if roll < 0.78:
        return email.upper()
    if roll < 0.9:
        return rng.choice((" ", "  ", "\t")) + email + rng.choice(("", " "))
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.3 else c for c in email)


@lru_cache(maxsize=8)
def build_world(seed: int = 7, people: int = 2000, companies: int = 300) -> World:
    """The world for these arguments; the same object is returned for repeated calls (it is immutable)."""
    if people < 1 or companies < 2:
        raise ValueError("a world needs at least one person and two companies")
    rng = random.Random(seed)
    company_list = _build_companies(rng, companies)
    person_list = _build_people(rng, people, company_list)
    # Its own generator, so adding shared devices left every other draw of the world as it was.
    person_list = _share_devices(random.Random(f"{seed}-shared-devices"), person_list)
    return _index(seed, company_list, person_list)


def _index(seed: int, companies: tuple[Company, ...], people: tuple[Person, ...]) -> World:
    by_company: dict[str, list[Person]] = {}
    for person in people:
        by_company.setdefault(person.company.company_id, []).append(person)
    return World(
        seed=seed,
        companies=companies,
        people=people,
        _by_email=MappingProxyType({p.email: p for p in people}),
        _by_user_id=MappingProxyType({p.user_id: p for p in people if p.user_id}),
        _by_anonymous_id=MappingProxyType({a: p for p in people for a in p.anonymous_ids}),
        _by_company=MappingProxyType({k: tuple(v) for k, v in by_company.items()}),
    )


def _rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


# ---------------------------------------------------------------------------------------------- companies


def _build_companies(rng: random.Random, count: int) -> tuple[Company, ...]:
    # The company itself comes first: internal people work there, so its domain must be a real company.
    founded = datetime(2019, 6, 1, tzinfo=UTC)
    own = Company("cmp_0001", "RudderStack", "rudderstack.com", "Software", 250, "US", founded)
    companies = [own]
    names: set[str] = {own.name}
    domains: set[str] = {own.domain, *INTERNAL_DOMAINS, *TEST_DOMAINS, *FREE_MAIL_DOMAINS}
    while len(companies) < count:
        name = f"{rng.choice(_COMPANY_HEADS)} {rng.choice(_COMPANY_TAILS)}"
        if name in names:
            name = f"{name} {len(companies)}"
        tld = rng.choices((".com", ".io", ".co"), weights=(70, 20, 10))[0]
        domain = re.sub(r"[^a-z0-9]", "", name.lower()) + tld
        if domain in domains:
            continue
        names.add(name)
        domains.add(domain)
        low, high = rng.choices(_EMPLOYEE_BUCKETS, weights=_EMPLOYEE_WEIGHTS)[0]
        companies.append(
            Company(
                company_id=f"cmp_{len(companies) + 1:04d}",
                name=name,
                domain=domain,
                industry=rng.choice(_INDUSTRIES),
                employees=rng.randint(low, high),
                country=rng.choices(_COUNTRIES, weights=_COUNTRY_WEIGHTS)[0],
                created_at=EPOCH - timedelta(days=rng.randint(30, 3650), seconds=rng.randrange(86400)),
            )
        )
    return tuple(companies)


# ------------------------------------------------------------------------------------------------- people


@dataclass
class _Journey:
    """A person's milestones, drawn before the person so that the whole journey fits the history."""

    stage: Stage
    created_at: datetime
    lead_at: datetime | None = None
    signed_up_at: datetime | None = None
    customer_at: datetime | None = None
    plan: str | None = None
    source_created_at: datetime | None = None
    quote_requested_at: datetime | None = None


def _build_people(rng: random.Random, count: int, companies: Sequence[Company]) -> tuple[Person, ...]:
    # Exact quotas (not per-person coin flips) keep the mix right even in a world of 50 people.
    order = list(range(count))
    rng.shuffle(order)
    n_internal = max(1, round(INTERNAL_SHARE * count))
    n_test = max(1, round(TEST_SHARE * count)) if count > n_internal else 0
    internal = set(order[:n_internal])
    test = set(order[n_internal : n_internal + n_test])
    opt_out = set(rng.sample(range(count), max(1, round(EMAIL_OPT_OUT_SHARE * count))))

    # Zipf-like weights: a few companies have many people, most have one or two.
    others = companies[1:]
    cum_weights: list[float] = []
    total = 0.0
    for rank in range(len(others)):
        total += 1.0 / (rank + 1) ** 0.8
        cum_weights.append(total)

    taken_emails: set[str] = set()
    people = []
    for index in range(count):
        kind = "internal" if index in internal else "test" if index in test else "regular"
        company = companies[0] if kind == "internal" else rng.choices(others, cum_weights=cum_weights)[0]
        people.append(_make_person(rng, index, kind, company, index in opt_out, taken_emails))
    return tuple(people)


def _share_devices(rng: random.Random, people: tuple[Person, ...]) -> tuple[Person, ...]:
    """Some signed-up people also log in on the laptop of a colleague who signed up too."""
    by_company: dict[str, list[Person]] = {}
    for person in people:
        if person.user_id is not None and not person.is_internal:
            by_company.setdefault(person.company.company_id, []).append(person)
    candidates = [p for colleagues in by_company.values() if len(colleagues) > 1 for p in colleagues]
    borrowers = rng.sample(candidates, min(len(candidates), round(SHARED_DEVICE_SHARE * len(candidates))))
    borrowed: dict[str, str] = {}
    for person in borrowers:
        colleagues = [c for c in by_company[person.company.company_id] if c.person_id != person.person_id]
        borrowed[person.person_id] = rng.choice(colleagues).anonymous_ids[0]
    return tuple(
        replace(p, borrowed_anonymous_ids=(borrowed[p.person_id],)) if p.person_id in borrowed else p for p in people
    )


def _make_person(
    rng: random.Random, index: int, kind: str, company: Company, opts_out: bool, taken_emails: set[str]
) -> Person:
    first = rng.choice(_FIRST_NAMES)
    last = rng.choice(_LAST_NAMES)
    email = _unique_email(rng, kind, first, last, company, taken_emails)
    journey = _draw_journey(rng, kind)
    signed_up = journey.signed_up_at is not None
    country = company.country if rng.random() < 0.8 else rng.choices(_COUNTRIES, weights=_COUNTRY_WEIGHTS)[0]
    phone = _phone(rng, country) if rng.random() < 0.6 else None
    device_count = rng.choices((1, 2, 3), weights=(55, 35, 10) if signed_up else (85, 15, 0))[0]
    return Person(
        person_id=f"per_{index + 1:05d}",
        first_name=first,
        last_name=last,
        email=email,
        company=company,
        title=rng.choice(_TITLES),
        phone=phone,
        country=country,
        user_id=f"usr_{index + 1:05d}" if signed_up else None,
        anonymous_ids=tuple(_rng_uuid(rng) for _ in range(device_count)),
        lifecycle_stage=journey.stage,
        created_at=journey.created_at,
        lead_at=journey.lead_at,
        signed_up_at=journey.signed_up_at,
        customer_at=journey.customer_at,
        plan=journey.plan,
        requested_enterprise_quote=journey.quote_requested_at is not None,
        quote_requested_at=journey.quote_requested_at,
        created_source=journey.source_created_at is not None,
        source_created_at=journey.source_created_at,
        consent_changes=_consent_changes(rng, journey, phone is not None, opts_out),
        is_internal=is_internal_email(email),
        is_test=is_test_email(email),
    )


def _unique_email(rng: random.Random, kind: str, first: str, last: str, company: Company, taken: set[str]) -> str:
    f = re.sub(r"[^a-z]", "", first.lower())
    last_clean = re.sub(r"[^a-z]", "", last.lower())
    if kind == "internal":
        domain = rng.choices((*INTERNAL_DOMAINS, "gmail.com"), weights=(70, 15, 15))[0]
        local = f"{f}+ruddertest" if domain == "gmail.com" else f"{f}.{last_clean}"
    elif kind == "test":
        domain = rng.choice(TEST_DOMAINS)
        local = rng.choice(("test", "qa", "asdf", f"{f}.test", "demo"))
    else:
        domain = company.domain if rng.random() < 0.82 else rng.choice(FREE_MAIL_DOMAINS)
        local = rng.choice((f"{f}.{last_clean}", f, f"{f[0]}{last_clean}", f"{f}{last_clean[0]}"))
    email = f"{local}@{domain}"
    suffix = 1
    while email in taken:
        suffix += 1
        email = f"{local}{suffix}@{domain}"
    taken.add(email)
    return email


def _phone(rng: random.Random, country: str) -> str:
    code = _DIAL_CODES[country]
    digits = "".join(str(rng.randrange(10)) for _ in range(10))
    # Several spellings of the same kind of number, because identity resolution normalises phones too.
    style = rng.randrange(3)
    if style == 0:
        return f"+{code} {digits[:3]} {digits[3:6]} {digits[6:]}"
    if style == 1:
        return f"+{code}{digits}"
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}" if code == "1" else f"0{digits[1:]}"


def _draw_journey(rng: random.Random, kind: str) -> _Journey:
    if kind == "internal":
        stage: Stage = rng.choices(("lead", "signed_up"), weights=(40, 60))[0]
    elif kind == "test":
        stage = rng.choices(("lead", "signed_up"), weights=(30, 70))[0]
    else:
        stage = rng.choices(STAGES, weights=(20, 35, 30, 15))[0]
    if stage == "visitor":
        return _Journey(stage, EPOCH + rng.random() * (HISTORY - timedelta(days=1)))

    # Offsets from the first visit; the first visit is placed last so the whole journey fits.
    has_form = stage == "lead" or rng.random() < 0.7
    lead = _hours(rng, 0.5, 48) if has_form else None
    offsets: dict[str, timedelta] = {}
    if lead is not None:
        offsets["lead"] = lead
    if stage in ("signed_up", "customer"):
        signup = (lead or timedelta()) + _hours(rng, 0.3, 72)
        offsets["signup"] = signup
        _draw_product_milestones(rng, stage, signup, offsets)
    latest = max(offsets.values())
    created = EPOCH + rng.random() * (HISTORY - latest - timedelta(hours=12))
    at = {name: created + offset for name, offset in offsets.items()}
    plan = None
    if stage == "customer":
        plan = rng.choices(("pro", "enterprise"), weights=(70, 30))[0]
    elif stage == "signed_up":
        plan = "free"
    quote = at.get("quote")
    if quote is not None and plan == "pro" and rng.random() < 0.85:
        quote = None  # most self-serve customers never talk to sales
    return _Journey(
        stage=stage,
        created_at=created,
        lead_at=at.get("lead"),
        signed_up_at=at.get("signup"),
        customer_at=at.get("customer"),
        plan=plan,
        source_created_at=at.get("source"),
        quote_requested_at=quote,
    )


def _draw_product_milestones(
    rng: random.Random, stage: Stage, signup: timedelta, offsets: dict[str, timedelta]
) -> None:
    # The "no source within 3 days of signing up" campaign needs all three groups: quick, late, never.
    roll = rng.random()
    if stage == "customer":
        roll *= 0.8  # customers nearly always build a source
    if roll < 0.55:
        offsets["source"] = signup + _hours(rng, 0.25, 70)
    elif roll < 0.75:
        offsets["source"] = signup + _hours(rng, 76, 120)
    if stage == "customer":
        customer = signup + _hours(rng, 24, 96)
        offsets["customer"] = customer
        if rng.random() < 0.7:
            offsets["quote"] = signup + (customer - signup) * rng.uniform(0.1, 0.8)
    elif rng.random() < 0.08:
        offsets["quote"] = signup + _hours(rng, 1, 72)


def _consent_changes(
    rng: random.Random, journey: _Journey, has_phone: bool, opts_out: bool
) -> tuple[ConsentChange, ...]:
    changes: list[ConsentChange] = []
    known_at = journey.lead_at or journey.signed_up_at
    if known_at is not None and rng.random() < 0.7:
        changes.append(ConsentChange(known_at, "email", True, "signup_form", "web"))
    if opts_out:
        changes.extend(_email_opt_out(rng, journey, known_at or journey.created_at))
    if journey.signed_up_at is not None:
        changes.extend(_device_channel_changes(rng, journey.signed_up_at, has_phone))
    changes.sort(key=lambda c: c.at)
    return tuple(changes)


def _email_opt_out(rng: random.Random, journey: _Journey, after: datetime) -> list[ConsentChange]:
    # Only channels that can reach the person: web needs a known email on a device, the backend a user id.
    if journey.stage == "visitor":
        systems, weights = ("customerio", "salesforce"), (70, 30)
    elif journey.signed_up_at is None:
        systems, weights = ("web", "customerio", "salesforce"), (50, 35, 15)
    else:
        systems, weights = ("web", "backend", "customerio", "salesforce"), (35, 35, 20, 10)
    system = rng.choices(systems, weights=weights)[0]
    source = {
        "web": "preference_center",
        "backend": "unsubscribe_link",
        "customerio": "customerio_unsubscribe",
        "salesforce": "sales_rep",
    }[system]
    window = WORLD_END - after - timedelta(hours=3)
    out_at = after + timedelta(hours=1) + rng.random() * max(window, timedelta(hours=1)) * 0.7
    changes = [ConsentChange(out_at, "email", False, source, system)]
    if rng.random() < RESUBSCRIBE_SHARE:
        back_system: ConsentSystem = "customerio" if journey.stage == "visitor" else "web"
        back_source = "customerio_preferences" if back_system == "customerio" else "preference_center"
        back_at = out_at + timedelta(hours=1) + rng.random() * (WORLD_END - out_at - timedelta(hours=2))
        changes.append(ConsentChange(back_at, "email", True, back_source, back_system))
    return changes


def _device_channel_changes(rng: random.Random, signed_up_at: datetime, has_phone: bool) -> list[ConsentChange]:
    changes: list[ConsentChange] = []
    remaining = WORLD_END - signed_up_at - timedelta(hours=2)
    if has_phone and rng.random() < 0.2:
        changes.append(ConsentChange(signed_up_at, "sms", True, "signup_form", "backend"))
        if rng.random() < 0.15:
            # A STOP reply is handled by the messaging tool, so only Customer.io knows about it.
            stop_at = signed_up_at + rng.random() * remaining
            changes.append(ConsentChange(stop_at, "sms", False, "sms_stop", "customerio"))
    if rng.random() < 0.3:
        opt_in_at = signed_up_at + timedelta(minutes=5)
        changes.append(ConsentChange(opt_in_at, "push", True, "app_prompt", "backend"))
        if rng.random() < 0.1:
            off_at = opt_in_at + rng.random() * remaining
            changes.append(ConsentChange(off_at, "push", False, "app_settings", "backend"))
    return changes
