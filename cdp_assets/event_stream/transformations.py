"""User transformations: shared rules that drop events before they reach a destination.

RudderStack runs JavaScript per event; here a transformation is a named, vectorised rule evaluated by
the warehouse on a whole batch, so it costs nothing per event in Python. Each rule names the JSON
values it reads (as pointers) and gives an SQL predicate over them that is true when the event must be
dropped. An event a rule drops is counted as "filtered" and recorded with the rule's name.

Which rules apply to the warehouse is a setting (`CDP_WAREHOUSE_TRANSFORMATIONS`, comma-separated
names); by default none do, because identity resolution wants to see internal and test traffic and
discards it itself. Marketing destinations use `drop_internal_emails`, the company's library rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdp_assets.event_stream.routing import json_pointer

# The company's "isRudderEmail" library function, as published: rudderlabs / rudderstack addresses and
# +ruddertest aliases are internal.
INTERNAL_EMAIL_PATTERN = r"@(rudderlabs|rudderstack)|\+ruddertest"
_INTERNAL_EMAIL = re.compile(INTERNAL_EMAIL_PATTERN)


def is_internal_email(email: str | None) -> bool:
    """The same rule for Python callers (reverse ETL payload checks)."""
    return bool(email) and bool(_INTERNAL_EMAIL.search(email))


@dataclass(frozen=True)
class Transformation:
    name: str
    description: str
    pointers: tuple[str, ...]  # JSON values the predicate reads, bound as v[1], v[2], ...
    predicate: str  # SQL over `v` (a list of the values as text) that is true to drop the event
    parameters: tuple[str, ...] = ()  # bound as p[1], p[2], ... (never pasted into SQL)


TRANSFORMATIONS: dict[str, Transformation] = {
    t.name: t
    for t in (
        Transformation(
            name="drop_internal_emails",
            description="Drop events whose email (context.traits, traits or properties) is internal.",
            pointers=(
                json_pointer("context", "traits", "email"),
                json_pointer("traits", "email"),
                json_pointer("properties", "email"),
            ),
            # An event without an email is kept: the blog's version throws on a missing
            # context.traits, which would fail the event instead of passing it on.
            predicate="regexp_matches(coalesce(v[1], v[2], v[3], ''), p[1])",
            parameters=(INTERNAL_EMAIL_PATTERN,),
        ),
        Transformation(
            name="drop_anonymous_pages",
            description="Drop page calls from visitors who have no userId yet.",
            pointers=(json_pointer("type"), json_pointer("userId")),
            # The type compares as the loader reads it, case aside (see classify).
            predicate="lower(v[1]) = 'page' AND coalesce(trim(v[2]), '') = ''",
        ),
    )
}


class UnknownTransformation(ValueError):
    pass


def resolve(names: tuple[str, ...] | list[str]) -> list[Transformation]:
    unknown = [name for name in names if name not in TRANSFORMATIONS]
    if unknown:
        raise UnknownTransformation(
            f"unknown transformation(s) {', '.join(unknown)}; known: {', '.join(sorted(TRANSFORMATIONS))}"
        )
    return [TRANSFORMATIONS[name] for name in names]
