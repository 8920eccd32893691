"""The stand-ins' own time: a clock that stands still until a test or a write moves it.

A stand-in never reads the wall clock, so the same seed gives the same data and the same stamps on
every run. Salesforce and Facebook keep a `SandboxClock` as it is (aware UTC datetimes); Stripe and
Customer.io stamp whole unix seconds and read it through `UnixTimeMixin`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cdp_assets.sandbox.event_generator import world_to_stream_time
from cdp_assets.sandbox.world import EPOCH, HISTORY, WORLD_END


def truncate_ms(moment: datetime) -> datetime:
    """Truncated to the millisecond: the finest precision any of the stand-in APIs keeps (Salesforce's)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SandboxClock:
    """A stand-in's "now". `tick()` hands every write its own, increasing stamp, `step` apart.

    Locked: the server's threads stamp writes while a test moves the clock.
    """

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(milliseconds=1)):
        # By default a day after the world's history ends: whatever a test changes comes after it.
        self._now = truncate_ms(start or WORLD_END + timedelta(days=1))
        self.step = step
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now = truncate_ms(self._now + delta)
            return self._now

    def set(self, moment: datetime) -> datetime:
        with self._lock:
            self._now = truncate_ms(moment.astimezone(UTC))
            return self._now

    def tick(self) -> datetime:
        with self._lock:
            stamp = self._now
            self._now = stamp + self.step
            return stamp


def _from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class UnixTimeMixin:
    """The time helpers of a stand-in whose API stamps whole unix seconds (Stripe, Customer.io).

    The stand-in calls `_init_time` in its `__init__`, before it seeds.
    """

    start: datetime
    span: timedelta
    clock: SandboxClock

    def _init_time(self, start: datetime | None, span: timedelta | None, lead_seconds: int) -> None:
        """Place the world's history on this stand-in's timeline as the event generator places it (by default
        one to one from EPOCH), and start the clock `lead_seconds` before it: what the seed creates first
        (a catalogue, campaigns) exists before any person arrives."""
        self.start = start or EPOCH
        self.span = span or HISTORY
        self.clock = SandboxClock(_from_unix(self.unix(self.start) - lead_seconds))

    def unix(self, at: datetime) -> int:
        """The unix time a moment of the world's history has in this stand-in."""
        return int(world_to_stream_time(at, self.start, self.span).timestamp())

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def advance(self, seconds: int = 1) -> int:
        self.clock.advance(timedelta(seconds=int(seconds)))
        return self.now()

    def set_time(self, when: int | datetime) -> int:
        self.clock.set(_from_unix(int(when.timestamp()) if isinstance(when, datetime) else int(when)))
        return self.now()

    def _replay(self, steps: list[tuple[int, Callable[[], None]]]) -> None:
        """Seed by running each step at its unix time, in time order (ties in the order given).

        The clock never runs back: a step due before the time the clock already reads runs at that time.
        """
        for at, step in sorted(steps, key=lambda entry: entry[0]):
            self.set_time(max(at, self.now()))
            step()
