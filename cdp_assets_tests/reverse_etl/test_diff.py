"""The diff engine on a real DuckDB: plans against the committed snapshot, commits only what was accepted."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cdp_assets.bench.reverse_etl import run as bench_run
from cdp_assets.reverse_etl.diff import commit, plan_sync

COLUMNS = ["email", "plan"]


@pytest.fixture
def conn(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute("CREATE TABLE people (user_id VARCHAR, email VARCHAR, plan VARCHAR, internal VARCHAR)")
    yield connection
    connection.close()


def model(conn: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    conn.execute("DELETE FROM people")
    for row in rows:
        conn.execute("INSERT INTO people VALUES (?, ?, ?, ?)", list(row))


def plan(conn: duckdb.DuckDBPyConnection, full: bool = False):
    return plan_sync(conn, "people_sync", "main.people", "user_id", COLUMNS, full_resync=full)


def ops(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(conn.execute("SELECT coalesce(pk, '<null>'), op FROM _sync_plan ORDER BY 1").fetchall())


def accept_all(conn: duckdb.DuckDBPyConnection, run: str = "r") -> None:
    commit(conn, "people_sync", run, "SELECT pk FROM _sync_plan")


def test_first_run_adds_everything_and_a_second_run_sends_nothing(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", "x"), ("u2", "b@x.com", "free", "y")])
    first = plan(conn)
    assert (first.adds, first.changes, first.removes) == (2, 0, 0)
    accept_all(conn)
    second = plan(conn)
    assert second.counts["unchanged"] == 2 and (second.adds, second.changes, second.removes) == (0, 0, 0)


def test_changes_removes_and_unmapped_columns(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", "x"), ("u2", "b@x.com", "free", "y"), ("u3", "c@x.com", "free", "z")])
    plan(conn)
    accept_all(conn)
    # u1 changes a mapped column, u2 only an unmapped one, u3 leaves, u4 arrives.
    model(
        conn, [("u1", "a@x.com", "enterprise", "x"), ("u2", "b@x.com", "free", "CHANGED"), ("u4", "d@x.com", "pro", "")]
    )
    second = plan(conn)
    assert ops(conn) == {"u1": "change", "u2": "unchanged", "u3": "remove", "u4": "add"}
    assert second.destination_rows == 3
    assert second.change_share(sends_removes=True) == pytest.approx(2 / 3)
    assert second.change_share(sends_removes=False) == pytest.approx(1 / 3)


def test_rejected_rows_are_retried_until_accepted_even_when_unchanged(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", ""), ("u2", "b@x.com", "free", "")])
    plan(conn)
    commit(conn, "people_sync", "r1", "SELECT 'u1'")  # the destination rejected u2
    assert ops(conn) == {"u1": "add", "u2": "add"}
    plan(conn)
    assert ops(conn) == {"u1": "unchanged", "u2": "add"}
    accept_all(conn, "r2")
    plan(conn)
    assert ops(conn) == {"u1": "unchanged", "u2": "unchanged"}


def test_a_rejected_change_keeps_the_old_hash(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", "")])
    plan(conn)
    accept_all(conn)
    model(conn, [("u1", "a@x.com", "enterprise", "")])
    plan(conn)
    commit(conn, "people_sync", "r2", "SELECT pk FROM _sync_plan WHERE false")
    plan(conn)
    assert ops(conn) == {"u1": "change"}
    payload = conn.execute("SELECT payload FROM reverse_etl.snapshots WHERE pk = 'u1'").fetchone()[0]
    assert '"plan":"pro"' in payload.replace(" ", "")


def test_null_and_duplicate_keys_are_invalid_never_sent(conn) -> None:
    model(
        conn,
        [
            (None, "n@x.com", "pro", ""),
            ("u1", "a@x.com", "pro", ""),
            ("u1", "a2@x.com", "free", ""),
            ("u2", "b@x.com", "pro", ""),
        ],
    )
    result = plan(conn)
    assert result.invalid == 3 and result.adds == 1
    reasons = dict(
        conn.execute(
            "SELECT coalesce(pk, '<null>') || ':' || (payload->>'email'), reason FROM _sync_plan WHERE op = 'invalid'"
        ).fetchall()
    )
    assert reasons == {
        "<null>:n@x.com": "null primary key",
        "u1:a@x.com": "duplicate primary key",
        "u1:a2@x.com": "duplicate primary key",
    }


def test_full_resync_resends_every_row_but_removes_only_what_left(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", ""), ("u2", "b@x.com", "free", "")])
    plan(conn)
    accept_all(conn)
    model(conn, [("u1", "a@x.com", "pro", "")])
    plan(conn, full=True)
    assert ops(conn) == {"u1": "change", "u2": "remove"}


def test_bench_finds_the_same_changes_as_the_naive_comparison(tmp_path: Path) -> None:
    result = bench_run(5000, 0.02, workdir=tmp_path)
    assert result["same_result"] is True
    assert result["engine_counts"]["change"] == result["expected_changes"] == 100


def test_a_key_that_becomes_duplicated_is_held_not_removed(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", ""), ("u2", "b@x.com", "free", "")])
    plan(conn)
    accept_all(conn, "r1")
    # A join fan-out duplicates u1: its rows are invalid, and the snapshot row must not become a remove.
    model(conn, [("u1", "a@x.com", "pro", ""), ("u1", "a@x.com", "enterprise", ""), ("u2", "b@x.com", "free", "")])
    result = plan(conn)
    assert (result.removes, result.invalid, result.counts["unchanged"]) == (0, 2, 1)
    assert conn.execute("SELECT DISTINCT op FROM _sync_plan WHERE pk = 'u1'").fetchall() == [("invalid",)]
    accept_all(conn, "r2")  # even committing "everything" leaves u1's snapshot row alone
    assert conn.execute("SELECT run_id FROM reverse_etl.snapshots WHERE pk = 'u1'").fetchall() == [("r1",)]
    # Once the model has one row for u1 again, it is compared with what the destination holds.
    model(conn, [("u1", "a@x.com", "pro", ""), ("u2", "b@x.com", "free", "")])
    plan(conn)
    assert ops(conn) == {"u1": "unchanged", "u2": "unchanged"}


def test_the_hash_is_of_what_is_sent_nulls_left_out_unless_they_are_sent(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", "x"), ("u2", "b@x.com", None, "y")])
    plan(conn)
    accept_all(conn)

    def plan_with(columns: list[str], send_nulls: bool = False) -> dict[str, str]:
        plan_sync(conn, "people_sync", "main.people", "user_id", columns, send_nulls=send_nulls)
        return ops(conn)

    # A newly mapped column that is null sends nothing new; one with a value does.
    conn.execute("UPDATE people SET internal = NULL WHERE user_id = 'u2'")
    assert plan_with([*COLUMNS, "internal"]) == {"u1": "change", "u2": "unchanged"}
    # With send_nulls its null would be sent (and clear the field): a change for every row.
    assert plan_with([*COLUMNS, "internal"], send_nulls=True) == {"u1": "change", "u2": "change"}
    # A column no longer mapped is no longer sent: what is left is what the destination has.
    assert plan_with(["email"]) == {"u1": "unchanged", "u2": "unchanged"}
    # A value that turns null is a change; a null that stays null is not.
    conn.execute("UPDATE people SET plan = NULL")
    assert plan_with(COLUMNS) == {"u1": "change", "u2": "unchanged"}


def test_blank_keys_are_invalid_never_sent_and_a_committed_one_is_not_removed(conn) -> None:
    model(conn, [("u1", "a@x.com", "pro", ""), ("  ", "s@x.com", "pro", "")])
    plan(conn)
    accept_all(conn)  # a snapshot from before blank keys were refused: it holds "  "
    model(conn, [("u1", "a@x.com", "pro", ""), ("", "e@x.com", "pro", ""), ("  ", "s@x.com", "pro", "")])
    model_rows = [("\u00a0\u3000", "n@x.com", "pro", ""), ("\t", "t@x.com", "pro", ""), (" u2 ", "u@x.com", "pro", "")]
    for row in model_rows:
        conn.execute("INSERT INTO people VALUES (?, ?, ?, ?)", list(row))
    result = plan(conn)
    assert (result.invalid, result.removes, result.adds) == (4, 0, 1)  # " u2 " is a key, if an odd one
    reasons = conn.execute("SELECT DISTINCT reason FROM _sync_plan WHERE op = 'invalid'").fetchall()
    assert reasons == [("blank primary key",)]
