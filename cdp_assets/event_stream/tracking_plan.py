"""The tracking plan: the track events the company relies on, each of which gets its own asset.

Every track event is loaded whatever its name (RudderStack gives each one a table of its properties);
the plan only says which of those tables are first-class: shown in the asset graph, counted and
checked after each load, and safe for dbt models to depend on. A table that is not in the plan still
loads, and the `tracks` asset lists it, so a new event is visible before anyone adds it here.

The names are the ones the product sends (see `sandbox/event_generator.py`, which emits the same
events); the table name always comes from `naming.event_table_name`, the one naming function.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp_assets.event_stream.naming import event_table_name


@dataclass(frozen=True)
class TrackedEvent:
    name: str  # the event name as the SDK sends it (`event` in the payload)
    source: str  # which part of the product sends it
    description: str

    @property
    def table(self) -> str:
        return event_table_name(self.name)


TRACKED_EVENTS: tuple[TrackedEvent, ...] = (
    # Marketing site (JS SDK): anonymous intent signals that feed lead scoring and audiences.
    TrackedEvent("cta_clicked", "web", "A call-to-action button was clicked (label, location, href)."),
    TrackedEvent("pricing_calculated", "web", "The pricing calculator produced a quote (plan, revenue, products)."),
    TrackedEvent("docs_searched", "web", "A search in the documentation (query, result count, filters)."),
    TrackedEvent("video_played", "web", "A product video was started (video id, duration)."),
    TrackedEvent("form_submit", "web", "A marketing form was submitted: the moment a visitor becomes a lead."),
    # Web app and backends: the product funnel.
    TrackedEvent("signed_up", "server", "An account was created (sign-up method, plan)."),
    TrackedEvent("source_created", "python", "A workspace created its first or another event source."),
    TrackedEvent("enterprise_quote_requested", "python", "A user asked sales for an enterprise quote."),
    TrackedEvent("checkout_started", "web", "The billing checkout was opened (cart)."),
    TrackedEvent("subscription_started", "python", "A paid subscription began (plan, revenue, interval)."),
    # Consent: the opt-out models read these, so they must never silently disappear.
    TrackedEvent("email_unsubscribed", "web, python", "A person opted out of marketing email."),
    TrackedEvent("email_resubscribed", "web, python", "A person opted back in to marketing email."),
)

TRACKED_TABLES: tuple[str, ...] = tuple(event.table for event in TRACKED_EVENTS)


def _check_unique() -> None:
    # Two names mapping to one table would give two assets the same key; fail at import, loudly.
    if len(set(TRACKED_TABLES)) != len(TRACKED_TABLES) or "" in TRACKED_TABLES:
        raise ValueError(f"tracking plan tables must be distinct and non-empty: {TRACKED_TABLES}")


_check_unique()
