"""What every source does the same way: pace its calls, retry what can be retried, stop on quota.

A source wraps each API call in `ApiPolicy.call`. The policy waits for the rate limiter, runs the call,
and when it raises asks the source's `classify` function what the error means: retry after some seconds
(honouring the API's Retry-After when it gives one, in full, up to `max_retry_after`; a longer one raises
`RetryAfterTooLong` rather than retrying early), stop the whole extract (`QuotaExhausted`), or fail.
Every call, retry and second spent waiting is counted in `CallStats`, which the Dagster assets report.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class QuotaExhausted(RuntimeError):
    """The API's quota is used up: the extract stops, what it committed stays, its cursor does not move."""


class RetriesExhausted(RuntimeError):
    """A call kept failing with a retryable error."""


class RetryAfterTooLong(RetriesExhausted):
    """The API asked to be retried later than the policy will wait (Retry-After above its ceiling).

    A `RetriesExhausted`, so every caller that handles running out of retries handles this too; it is
    raised instead of retrying early, which the API would only refuse again (and count against us)."""


@dataclass(frozen=True)
class Retry:
    """Retry after this many seconds (None: the policy's own backoff)."""

    after: float | None = None


@dataclass(frozen=True)
class Stop:
    """Stop the extract: the quota is exhausted."""

    message: str


Decision = Retry | Stop | None  # None: not retryable, re-raise


@dataclass
class CallStats:
    calls: int = 0
    retries: int = 0
    waited_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, float | int]:
        return {"api_calls": self.calls, "api_retries": self.retries, "api_wait_seconds": round(self.waited_seconds, 3)}


class RateLimiter:
    """A token bucket: at most `rate` calls a second on average, bursts up to `burst`. Thread-safe."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1
        if wait:
            time.sleep(wait)
        return wait


@dataclass
class ApiPolicy:
    """Pacing and retries for one API. `classify` maps an exception to a `Decision`."""

    name: str
    classify: Callable[[BaseException], Decision]
    rate_per_second: float = 10.0
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0  # the longest backoff of our own
    # The longest wait an API may ask for (Retry-After) that is honoured; a longer one fails the call with
    # RetryAfterTooLong. Five minutes: long enough for per-minute rate windows, short enough that a run
    # does not sit idle for an hour on one call. A policy whose max_delay is longer honours up to that.
    max_retry_after: float = 300.0
    stats: CallStats = field(default_factory=CallStats)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rate_per_second, burst=max(1, int(self.rate_per_second)))

    def call(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.max_attempts + 1):
            self.stats.waited_seconds += self.limiter.acquire()
            self.stats.calls += 1
            try:
                return fn()
            except Exception as exc:
                decision = self.classify(exc)
                kind = type(exc).__name__
                self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
                if isinstance(decision, Stop):
                    raise QuotaExhausted(f"{self.name}: {decision.message}") from exc
                if decision is None:
                    raise
                if attempt == self.max_attempts:
                    raise RetriesExhausted(f"{self.name}: still failing after {attempt} attempts: {exc}") from exc
                if decision.after is not None:
                    # The API said when: retrying sooner would only be refused again, so it is waited in
                    # full, or not at all when it is beyond the ceiling.
                    ceiling = max(self.max_retry_after, self.max_delay)
                    if decision.after > ceiling:
                        raise RetryAfterTooLong(
                            f"{self.name}: the API asked to wait {decision.after:g} s before retrying "
                            f"(Retry-After), longer than the {ceiling:g} s this client waits; not retrying "
                            "early. Run again later."
                        ) from exc
                    delay = decision.after
                else:
                    delay = self._backoff(attempt)  # at most max_delay
                self.stats.retries += 1
                self.stats.waited_seconds += delay  # what is slept, nothing more
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter: many clients retrying at once do not retry in step.
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def retry_after(headers: object) -> float | None:
    """Seconds from a Retry-After header (seconds form); None when absent or unreadable."""
    value = None
    if headers is not None:
        getter = getattr(headers, "get", None)
        if getter is not None:
            value = getter("Retry-After") or getter("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
