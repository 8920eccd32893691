"""The diff engine: what a sync must send, computed in the warehouse against its last committed snapshot.

Each sync keeps, in schema `reverse_etl`, one snapshot row per primary key it has delivered: the mapped
columns as the destination last accepted them (`payload`) and the hash of what was sent (`row_hash`). A
plan is a FULL OUTER JOIN of the model (mapped columns only, hashed) with that snapshot:

- add: the key is in the model, not in the snapshot (new, or never accepted: a rejected row is retried);
- change: in both, with another hash (or any hash on a full resync);
- remove: in the snapshot, not in the model (sent only by mirror syncs; other modes just forget it);
- unchanged: same hash: nothing to send.

The hash is of what the destination receives, not of the raw columns (`sent_text`): unless the sync sends
nulls, a null is never sent, so a null column and a column that is not mapped at all hash alike. Mapping
a new column that is still null (or a row being null in it) therefore changes no hash and re-sends
nothing, while a value that turns null is still a change (the message no longer carries it). Nulls
clear a field in both destinations (a Customer.io attribute set to null or "" is removed; Salesforce
empties a field set to null), which is why they are sent only when the spec asks. With `send_nulls`
every mapped column is sent, null or not, so a newly mapped column is a change (its null clears
whatever the destination holds).

Snapshots written before this rule hashed every mapped column, nulls included. They need no migration
step: for a sync that does not send nulls the snapshot side is hashed from its stored `payload` by the
same rule (projected onto the columns mapped now) whenever its stored hash differs, and the commit
rewrites such a row's hash, so only the first run after the upgrade pays for it. With `send_nulls` the old
and new hashes are the same.

Only rows the destination accepted are committed, so a rejected row keeps its old hash (or none) and is
planned again next run even if the model did not change. Keys that are null, blank or duplicated in the
model are never sent: they are counted and recorded as invalid. A duplicated key that the snapshot holds is
neither changed nor removed: the destination keeps what it was last sent until the model has one row
for it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cdp_assets.event_stream.naming import quote
from cdp_assets.warehouse import Connection

SCHEMA = "reverse_etl"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.snapshots (
    sync VARCHAR NOT NULL,
    pk VARCHAR NOT NULL,
    row_hash VARCHAR NOT NULL,
    payload JSON,                -- the mapped columns as last accepted (what the destination holds)
    committed_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL
);
"""

OPS = ("add", "change", "remove", "unchanged", "invalid")
# A key made only of whitespace (RE2: ASCII \s, Unicode separators, zero-width space and BOM).
BLANK = r"[\s\p{Z}\x{200B}\x{FEFF}]*"


def model_columns(conn: Connection, model: str) -> list[str]:
    """The column names of `model` (a `schema.table` relation), in order. Raises the warehouse's error
    when the relation cannot be read (it does not exist, say)."""
    relation = ".".join(quote(part) for part in model.split("."))
    description = conn.execute(f"SELECT * FROM {relation} LIMIT 0").description
    return [column[0] for column in description or []]


def ensure(conn: Connection) -> None:
    for statement in DDL.split(";"):
        if statement.strip():
            conn.execute(statement)


@dataclass
class Plan:
    """Counts of a computed plan; the rows themselves are in the temporary table `table`."""

    sync: str
    table: str
    counts: dict[str, int] = field(default_factory=dict)
    destination_rows: int = 0  # rows the snapshot says the destination holds

    @property
    def adds(self) -> int:
        return self.counts.get("add", 0)

    @property
    def changes(self) -> int:
        return self.counts.get("change", 0)

    @property
    def removes(self) -> int:
        return self.counts.get("remove", 0)

    @property
    def invalid(self) -> int:
        return self.counts.get("invalid", 0)

    def change_share(self, sends_removes: bool) -> float:
        """Share of the destination's rows this run would change or remove (the large-change guard)."""
        touched = self.changes + (self.removes if sends_removes else 0)
        return touched / self.destination_rows if self.destination_rows else 0.0


def sent_text(payload: str, columns: list[str], send_nulls: bool) -> str:
    """SQL for the canonical JSON text of what a row sends, from `payload` (an SQL JSON expression
    holding the mapped columns, as the snapshot stores it): its `columns` (sorted), and unless
    `send_nulls` only those that are neither null nor missing."""
    if send_nulls:
        return f"CAST({payload} AS VARCHAR)"
    return _joined(
        columns,
        lambda c: f"""coalesce(json_type({payload}, '$."{c}"'), 'NULL') = 'NULL'""",
        lambda c: f"""CAST(json_extract({payload}, '$."{c}"') AS VARCHAR)""",
    )


def _model_sent_text(payload: str, columns: list[str], send_nulls: bool) -> str:
    """`sent_text` straight from the model's columns, `payload` being their `json_object` (the model
    side is hashed on every row of every run, so it avoids reading the object back). A row without
    nulls sends every column: its text is the object's, the hash older versions stored."""
    if send_nulls or not columns:
        return f"CAST({payload} AS VARCHAR)"
    any_null = " OR ".join(f"{quote(c)} IS NULL" for c in sorted(columns))
    # (A JSON column's JSON null counts as a value here, unlike in `sent_text`: checking for it would
    # cost every row a second serialisation, for a hash that differs only from a snapshot written
    # before nulls were left out, so such a row is re-sent once at most.)
    joined = _joined(columns, lambda c: f"{quote(c)} IS NULL", lambda c: f"CAST(to_json({quote(c)}) AS VARCHAR)")
    return f"CASE WHEN {any_null} THEN {joined} ELSE CAST({payload} AS VARCHAR) END"


def _joined(columns: list[str], is_null: Callable[[str], str], text: Callable[[str], str]) -> str:
    for column in columns:
        quote(column)  # refuses anything but a plain identifier: the names go into the SQL text as they are
    # concat_ws skips NULL arguments, so a null (or missing) column adds nothing, not even its name.
    parts = ", ".join(f"""CASE WHEN {is_null(c)} THEN NULL ELSE '"{c}":' || {text(c)} END""" for c in sorted(columns))
    return f"'{{' || concat_ws(',', {parts}) || '}}'"


def plan_sync(
    conn: Connection,
    sync: str,
    model: str,
    primary_key: str,
    columns: list[str],
    full_resync: bool = False,
    table: str = "_sync_plan",
    send_nulls: bool = False,
) -> Plan:
    """Compute the plan of `sync` from `model` (a `schema.table` relation whose names are safe
    identifiers) into the temporary table `table`: (pk, op, row_hash, payload, previous_payload).
    `send_nulls`: whether the destination is sent a mapped column's null (it then clears the field),
    so that a null column hashes differently from an unmapped one."""
    ensure(conn)
    relation = ".".join(quote(part) for part in model.split("."))
    key = quote(primary_key)
    # Sorted, so the hash does not depend on the order the mapping lists columns in.
    mapped = sorted(columns)
    payload = "json_object(" + ", ".join(f"'{c}', {quote(c)}" for c in mapped) + ")"
    # The snapshot side: its stored hash, or, where that differs, the hash of its stored payload under
    # today's rule (a snapshot hashed with its nulls, before they were left out, or a column no longer
    # mapped). With send_nulls a column missing from the stored payload must stay a difference: its
    # null has never been sent, so only the stored hash tells.
    sent = _model_sent_text(payload, mapped, send_nulls)
    rehashed = "NULL" if send_nulls else f"md5({sent_text('s.payload', mapped, False)})"
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {quote(table)} AS
        WITH keyed AS (
            SELECT CAST({key} AS VARCHAR) AS pk, {payload} AS payload, {sent} AS sent,
                   count(*) OVER (PARTITION BY {key}) AS copies
            FROM {relation}
        ), model AS (
            -- A blank key (empty, or only spaces, Unicode ones too) names no record: sent, it is refused
            -- every run (Customer.io: "id cannot be blank"), or worse creates a person or record whose
            -- id is spaces. It is invalid, as a null key is.
            SELECT *, CASE WHEN pk IS NULL THEN 'null primary key'
                           WHEN regexp_full_match(pk, '{BLANK}') THEN 'blank primary key'
                           WHEN copies > 1 THEN 'duplicate primary key' END AS problem
            FROM keyed
        ), valid AS (
            SELECT pk, payload, md5(sent) AS row_hash FROM model WHERE problem IS NULL
        ), snap AS (
            -- A key duplicated (or blank) in the model is held as it is: leaving its snapshot row out of
            -- the join keeps it from turning into a remove (which would take the member out of the
            -- destination or blank its fields), and since the plan has no add, change or remove for it,
            -- commit leaves its snapshot row alone too.
            SELECT s.pk, s.row_hash, s.payload FROM {SCHEMA}.snapshots s
            WHERE s.sync = $sync
              AND NOT EXISTS (SELECT 1 FROM model m WHERE m.pk = s.pk AND m.problem IS NOT NULL)
        )
        SELECT coalesce(v.pk, s.pk) AS pk,
               CASE WHEN s.pk IS NULL THEN 'add'
                    WHEN v.pk IS NULL THEN 'remove'
                    WHEN $full THEN 'change'
                    WHEN v.row_hash = s.row_hash THEN 'unchanged'
                    -- Evaluated only where the stored hash differs (CASE short-circuits per row).
                    WHEN s.payload IS NOT NULL AND v.row_hash = {rehashed} THEN 'unchanged'
                    ELSE 'change' END AS op,
               v.row_hash, v.payload, s.payload AS previous_payload, CAST(NULL AS VARCHAR) AS reason
        FROM valid v FULL OUTER JOIN snap s ON s.pk = v.pk
        UNION ALL
        SELECT pk, 'invalid', NULL, payload, NULL, problem FROM model WHERE problem IS NOT NULL
        """,
        {"sync": sync, "full": full_resync},
    )
    counts = dict(conn.execute(f"SELECT op, count(*) FROM {quote(table)} GROUP BY op").fetchall())
    destination_rows = conn.execute(
        f"SELECT count(*) FROM {SCHEMA}.snapshots WHERE sync = $sync", {"sync": sync}
    ).fetchone()[0]
    return Plan(sync, table, {op: counts.get(op, 0) for op in OPS}, destination_rows)


def commit(conn: Connection, sync: str, run_id: str, accepted: str, table: str = "_sync_plan") -> int:
    """Commit the accepted rows of a plan: `accepted` is an SQL query of the plan's pks the destination
    accepted. Adds and changes take their new hash; removes (and rows that left a non-mirror sync's
    model) leave the snapshot. Returns the number of snapshot rows written or removed.

    Unchanged rows whose stored hash was written under an older rule (see the module docstring) take
    today's hash of the same content, so the next plan finds them equal without rehashing."""
    plan = quote(table)
    conn.execute(
        f"""UPDATE {SCHEMA}.snapshots s SET row_hash = p.row_hash FROM {plan} p
            WHERE s.sync = $sync AND s.pk = p.pk AND p.op = 'unchanged' AND s.row_hash <> p.row_hash""",
        {"sync": sync},
    )
    conn.execute(
        f"""DELETE FROM {SCHEMA}.snapshots WHERE sync = $sync AND pk IN (
                SELECT pk FROM {plan} WHERE op IN ('add', 'change', 'remove') AND pk IN ({accepted}))""",
        {"sync": sync},
    )
    conn.execute(
        f"""INSERT INTO {SCHEMA}.snapshots
            SELECT $sync, pk, row_hash, payload, now(), $run FROM {plan}
            WHERE op IN ('add', 'change') AND pk IN ({accepted})""",
        {"sync": sync, "run": run_id},
    )
    return conn.execute(
        f"SELECT count(*) FROM {plan} WHERE op IN ('add', 'change', 'remove') AND pk IN ({accepted})"
    ).fetchone()[0]
