"""Helpers of the runner tests: consent rows, ledger reads, and what the stand-ins received."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from cdp_assets.sandbox.http import SandboxApp


def set_consent(conn: duckdb.DuckDBPyConnection, profile_id: str, status: str, channel: str = "email") -> None:
    """One consent_status row, eligible as the model decides it (opted_in; unknown where no opt-in is needed)."""
    conn.execute("DELETE FROM consent.consent_status WHERE profile_id = ? AND channel = ?", [profile_id, channel])
    eligible = status == "opted_in" or (status == "unknown" and channel == "email")
    conn.execute(
        "INSERT INTO consent.consent_status VALUES (?, ?, ?, ?, ?, 'test', NULL, 'planted by the test', NULL)",
        [profile_id, channel, status, eligible, channel != "email"],
    )


def row_results(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, tuple[str, str, str | None]]:
    rows = conn.execute(
        "SELECT pk, op, status, error FROM reverse_etl.sync_row_results WHERE run_id = ? ORDER BY pk", [run_id]
    ).fetchall()
    return {pk: (op, status, error) for pk, op, status, error in rows}


def writes(app: SandboxApp, since: int = 0) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every write request after the first `since` log entries."""
    out = []
    for request in app.requests()[since:]:
        if request.method in ("PUT", "POST", "PATCH", "DELETE") and "oauth2" not in request.path:
            out.append((request.method, request.path, request.json() if request.body else None))
    return out


def batch_operations(app: SandboxApp, since: int = 0) -> list[dict[str, Any]]:
    return [op for method, path, body in writes(app, since) if path == "/api/v2/batch" for op in body["batch"]]


def previews(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, tuple[str, Any, str | None]]:
    rows = conn.execute(
        "SELECT pk, op, payload, would_skip_reason FROM reverse_etl.sync_previews WHERE run_id = ? ORDER BY pk",
        [run_id],
    ).fetchall()
    return {pk: (op, json.loads(payload) if payload else None, reason) for pk, op, payload, reason in rows}
