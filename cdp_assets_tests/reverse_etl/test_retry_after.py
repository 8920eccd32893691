"""Retry-After is honoured in full (up to the policy's ceiling) and counted as slept; a longer one stops the
call with a clear error instead of retrying early. End to end through the Customer.io destination, and on
`ApiPolicy` itself for the backoff path. Sleeps are recorded, not slept, through the policy's `sleep`."""

from __future__ import annotations

import duckdb
import pytest

from cdp_assets.reverse_etl.destinations import open_destination
from cdp_assets.reverse_etl.destinations.customerio import CustomerIODestination
from cdp_assets.reverse_etl.runner import RunOptions, SyncResult, run_sync
from cdp_assets.sandbox.customerio import CustomerIOSandbox, rate_limit_fault
from cdp_assets.sources.customerio import CustomerIOConfig
from cdp_assets.sources.policy import ApiPolicy, Retry, RetryAfterTooLong
from cdp_assets_tests.reverse_etl.helpers import row_results, writes
from cdp_assets_tests.reverse_etl.test_customerio_sync import PEOPLE, load_people, people_spec


def run_recording_sleeps(
    conn: duckdb.DuckDBPyConnection, config: CustomerIOConfig, run_id: str
) -> tuple[SyncResult, list[float], float]:
    spec = people_spec()
    destination = open_destination(spec, config, None)
    assert isinstance(destination, CustomerIODestination)
    slept: list[float] = []
    destination.policy.sleep = slept.append
    try:
        result = run_sync(conn, spec, destination, RunOptions(), run_id)
    finally:
        destination.close()
    return result, slept, destination.stats.waited_seconds


def test_a_retry_after_above_the_backoff_cap_is_waited_in_full_and_counted_as_slept(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    load_people(warehouse, PEOPLE[:1])
    cio_app.inject(rate_limit_fault(times=2, retry_after=120, path="/api/v2/batch"))
    result, slept, waited = run_recording_sleeps(warehouse, cio_config, "r1")
    # It used to sleep min(120, max_delay=60) and report 120 a retry.
    assert (result.status, result.accepted, result.retries) == ("success", 1, 2)
    assert slept == [120.0, 120.0]
    assert waited == pytest.approx(240.0, abs=0.5)  # plus whatever the rate limiter slept (nothing here)


def test_a_retry_after_beyond_the_ceiling_stops_the_run_without_retrying_early(
    warehouse: duckdb.DuckDBPyConnection, cio_app: CustomerIOSandbox, cio_config: CustomerIOConfig
) -> None:
    load_people(warehouse, PEOPLE[:2])
    cio_app.inject(rate_limit_fault(times=1, retry_after=3600, path="/api/v2/batch"))
    result, slept, _ = run_recording_sleeps(warehouse, cio_config, "r1")
    assert (result.status, result.sent, result.retries, result.api_calls) == ("quota_stopped", 0, 0, 1)
    assert slept == []
    assert "the API asked to wait 3600 s before retrying (Retry-After), longer than the 300 s" in result.message
    assert {status for _, status, _ in row_results(warehouse, "r1").values()} == {"not_sent"}
    assert warehouse.execute("SELECT count(*) FROM reverse_etl.snapshots").fetchone() == (0,)
    # The next run sends them.
    seen = len(cio_app.requests())
    again, _, _ = run_recording_sleeps(warehouse, cio_config, "r2")
    assert (again.status, again.accepted) == ("success", 2)
    assert [path for _, path, _ in writes(cio_app, seen)] == ["/api/v2/batch"]


class _Throttled(Exception):
    pass


def test_the_policy_honours_retry_after_up_to_its_ceiling_and_refuses_beyond() -> None:
    slept: list[float] = []
    policy = ApiPolicy(name="test_api", classify=lambda exc: Retry(after=200.0), rate_per_second=1000.0)
    policy.sleep = slept.append
    attempts: list[int] = []

    def twice_throttled() -> str:
        attempts.append(1)
        if len(attempts) <= 2:
            raise _Throttled("429")
        return "ok"

    assert policy.call(twice_throttled) == "ok"
    assert slept == [200.0, 200.0]
    assert policy.stats.retries == 2 and policy.stats.waited_seconds == pytest.approx(400.0, abs=0.1)

    refused = ApiPolicy(name="test_api", classify=lambda exc: Retry(after=301.0), rate_per_second=1000.0)
    refused.sleep = slept.append
    attempts.clear()
    with pytest.raises(RetryAfterTooLong, match="asked to wait 301 s .* longer than the 300 s this client waits"):
        refused.call(twice_throttled)
    assert refused.stats.retries == 0 and refused.stats.waited_seconds < 0.1

    # A policy whose own max_delay is longer (configured for an API known to ask for long waits) honours it.
    patient = ApiPolicy(name="test_api", classify=lambda exc: Retry(after=600.0), rate_per_second=1000.0)
    patient.max_delay = 900.0
    patient.sleep = slept.append
    attempts.clear()
    assert patient.call(twice_throttled) == "ok"
    assert slept[-2:] == [600.0, 600.0]


def test_the_policy_counts_its_own_backoff_as_slept() -> None:
    slept: list[float] = []
    policy = ApiPolicy(
        name="test_api", classify=lambda exc: Retry(), rate_per_second=1000.0, base_delay=50.0, max_delay=60.0
    )
    policy.sleep = slept.append
    attempts: list[int] = []

    def throttled_four_times() -> str:
        attempts.append(1)
        if len(attempts) <= 4:
            raise _Throttled("503")
        return "ok"

    assert policy.call(throttled_four_times) == "ok"
    assert len(slept) == 4 and all(0 <= s <= 60.0 for s in slept)
    assert policy.stats.waited_seconds == pytest.approx(sum(slept), abs=0.1)
