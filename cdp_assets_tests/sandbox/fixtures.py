"""Fixtures for tests that talk to a stand-in; the conftests of `sandbox/` and `sources/` register them.

(The guard that keeps every test on 127.0.0.1 is project-wide, in cdp_assets_tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdp_assets.sandbox.http import SandboxApp, SandboxServer


@pytest.fixture
def server(app: SandboxApp) -> Iterator[SandboxServer]:
    """The test module's `app` fixture, served on 127.0.0.1 for the length of the test."""
    with SandboxServer(app) as running:
        yield running
