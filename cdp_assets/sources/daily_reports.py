"""Daily ad reports whose recent days keep changing: what the Facebook Ads and Google Ads sources share.

Both APIs credit a conversion to the day of the click, for days (Facebook's attribution window) or weeks
(Google's conversion window) afterwards. So a report resource is merged on its day and read with a
`date` cursor that starts each run `lookback_days` before the last day loaded: the merge replaces those
days with their current numbers. Long ranges are asked for in chunks of days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dlt


def report_days(start_date: date | None, end_date: date | None, days_back: int) -> tuple[date, date]:
    """The first day a first run reads and the last day every run asks for: the configured ones, else
    `days_back` days before today and today (UTC). Today's numbers are partial: the lookback revisits them."""
    today = datetime.now(UTC).date()
    return start_date or today - timedelta(days=days_back), end_date or today


def lookback_cursor(field: str, initial_value: date, lookback_days: int) -> dlt.sources.incremental[date]:
    """The `date` cursor of a report resource. Its `start_value` is the first day to read this run: dlt steps
    the last value back by the lag (whole days, for a date cursor), never before `initial_value`."""
    # primary_key=(): no boundary deduplication, so the cursor's own day is re-read and updated even with a
    # lookback of 0 (dlt would drop its rows as already seen, freezing its partial numbers); the merge makes
    # re-reads harmless.
    return dlt.sources.incremental(field, initial_value=initial_value, lag=float(lookback_days) or None, primary_key=())


def date_chunks(since: date, until: date, days: int) -> Iterator[tuple[date, date]]:
    """`since`..`until` (both included) as consecutive ranges of at most `days` days."""
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        yield start, end
        start = end + timedelta(days=1)
