"""Fixtures for the Dagster wiring: the real definitions and a throwaway instance.

The package-wide conftest isolates the data folder, warehouse and landing location per test; the
resources read those settings when a run uses them, so the definitions are built once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import dagster as dg
import pytest

from cdp_assets_tests.defs.helpers import VENV_BIN


@pytest.fixture(scope="session")
def defs() -> dg.Definitions:
    # The dbt subprocess must find `dbt` (P6) even when pytest was started without the venv on PATH.
    if VENV_BIN.is_dir() and str(VENV_BIN) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    from cdp_assets.definitions import defs as cdp_defs

    return cdp_defs


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
