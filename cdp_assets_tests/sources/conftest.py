"""The source tests: no network beyond 127.0.0.1, a module's `app` stand-in served, a world to seed it from."""

from __future__ import annotations

import pytest

from cdp_assets.sandbox.world import World, build_world

# Imported to register the fixtures for this folder (a conftest's fixtures reach only its own folder).
from cdp_assets_tests.sandbox.fixtures import server  # noqa: F401


@pytest.fixture
def people() -> int:
    """How many people the world has: paging and change tracking need a few pages of data, so 300; fault
    tests parametrize it smaller to run faster."""
    return 300


@pytest.fixture
def world(people: int) -> World:
    return build_world(seed=7, people=people, companies=max(20, people // 8))
