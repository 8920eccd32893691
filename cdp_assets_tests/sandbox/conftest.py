"""The stand-ins' own tests: no network beyond 127.0.0.1, a module's `app` served, and the world they share."""

from __future__ import annotations

import pytest

from cdp_assets.sandbox.world import World, build_world

# Imported to register the fixtures for this folder (a conftest's fixtures reach only its own folder).
from cdp_assets_tests.sandbox.fixtures import server  # noqa: F401


@pytest.fixture(scope="module")
def world() -> World:
    """What the Stripe, Customer.io and Salesforce stand-ins are seeded from (tests change the stand-ins, not it)."""
    return build_world(seed=7, people=300, companies=40)
