"""Deciding, for every staged line, what happens to it: discarded, duplicate, filtered or loaded.

All in the warehouse, on the whole batch: the JSON is parsed there, not in Python. The result is the
temporary table `_cls`, one row a line with its status, the reason or rule where it was not loaded, and
the standard columns RudderStack derives from the envelope (ids, the four timestamps, ips, source).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cdp_assets.event_stream import spec
from cdp_assets.event_stream.ledger import SCHEMA as LEDGER
from cdp_assets.event_stream.ledger import id_hash
from cdp_assets.event_stream.naming import event_table_name
from cdp_assets.event_stream.routing import json_pointer, routing_pointers, routing_rule_sql
from cdp_assets.event_stream.sample_json import UnreadableLine, parse_sample
from cdp_assets.event_stream.transformations import Transformation

# Envelope values read as text, in this order (b[1] .. b[18] in SQL).
ENVELOPE = [
    ("type",),
    ("messageId",),
    ("anonymousId",),
    ("userId",),
    ("event",),
    ("receivedAt",),
    ("sentAt",),
    ("originalTimestamp",),
    ("timestamp",),
    ("channel",),
    ("context", "ip"),
    ("request_ip",),
    ("name",),
    ("properties", "name"),
    ("groupId",),
    ("previousId",),
    ("context", "library", "name"),
    ("integrations",),
]

# Line statuses. `blank` lines are ignored and not counted as lines.
LOADED, FILTERED, DUPLICATE, DISCARDED, BLANK = "loaded", "filtered", "duplicate", "discarded", "blank"


@dataclass(frozen=True)
class Destination:
    """The warehouse as a RudderStack destination, for the context_destination_* columns."""

    id: str
    type: str


def _to_millisecond(micros: str) -> str:
    """SQL: microseconds since the epoch cut down to the millisecond, as RudderStack keeps timestamps.

    The four timestamps are computed as integers: `date_trunc` and interval arithmetic on TIMESTAMPTZ go
    through ICU's calendar (about 4x the time), and the clock-skew rule is plain arithmetic on instants,
    which calendar arithmetic in a zone with daylight saving is not. A time that is not finite (the text
    'infinity') has no epoch value, so it counts as missing. The modulo takes the sign of its left side:
    adding 1000 first floors a time before 1970 as `date_trunc` does.
    """
    return f"({micros} - ({micros} % 1000 + 1000) % 1000)"


def _instant(position: int) -> str:
    """SQL: the envelope timestamp at b[position] in microseconds since the epoch, NULL when it is no
    time. DuckDB's cast also reads words ('epoch', 'infinity', 'now'...); a time never starts with a
    letter (code points 65 to 122 are the letters and a few signs no time starts with either)."""
    value = f"b[{position}]"
    return f"epoch_us(TRY_CAST(CASE WHEN NOT (ascii({value}) BETWEEN 65 AND 122) THEN {value} END AS TIMESTAMPTZ))"


# The envelope ids (their positions in b, 1-based) that name a person or a group: a JSON object or
# array there is no id. RudderStack's rules skip an object and a blank (empty) array; this loader takes
# no array for an id either, since its text would join unrelated events in identity stitching.
_IDS = {name: ENVELOPE.index((name,)) + 1 for name in ("anonymousId", "userId", "groupId", "previousId")}


def _id(name: str) -> str:
    """SQL: the envelope id `name` as text, NULL when it is an object or an array (see `id_kinds`)."""
    position = _IDS[name]
    kind = list(_IDS).index(name) + 1
    return f"CASE WHEN id_kinds[{kind}] IN ('OBJECT', 'ARRAY') THEN NULL ELSE b[{position}] END"


ID_NOT_TEXT = "a JSON object or array is no id; loaded as NULL"
PAYLOAD_NOT_OBJECT = "not an object, so it has no keys to flatten; value is "


def _id_rejects() -> str:
    """SQL: the ids of a line that were a non-empty object or array, as rudder_discards entries (column,
    value, reason), NULL when there are none. An empty one is blank, skipped like "" and null."""
    columns = {"anonymousId": "anonymous_id", "userId": "user_id", "groupId": "group_id", "previousId": "previous_id"}
    entries = ", ".join(
        f"struct_pack(column_name := '{column}', column_value := b[{_IDS[name]}], reason := '{ID_NOT_TEXT}', "
        f"bad := {_id(name)} IS NULL AND b[{_IDS[name]}] NOT IN ('{{}}', '[]'))"
        for name, column in columns.items()
    )
    return f"CASE WHEN id_kinds IS NOT NULL THEN nullif(list_filter([{entries}], lambda e: e.bad), []) END"


def _macro_name(t: Transformation) -> str:
    return f"cdp_transform_{t.name}"


def classify(
    conn: duckdb.DuckDBPyConnection,
    transformations: list[Transformation],
    destination: Destination,
    key_pointers: list[str],
) -> str | None:
    """Build `_cls` from `_raw` and `_chunk_files` (see staging), and the loaded lines' sources.

    `key_pointers` are the payload objects known so far: each line's `keys_hash` hashes the keys it
    holds at them, in the same scan as the envelope, so shape discovery starts without reading the text
    again. Returns the event type whose lines are read from `_raw` directly (see `_split_loaded`).
    """
    # Everything classification reads comes out of one parse of each line: the envelope, then the values
    # each transformation reads (its v[1..] are positions in the same list).
    pointers = [json_pointer(*path) for path in ENVELOPE]
    offsets = []
    for t in transformations:
        offsets.append(len(pointers))
        pointers.extend(t.pointers)
    extra_lists = "".join(
        f", b[{offset + 1}:{offset + len(t.pointers)}] AS t{i}"
        for i, (t, offset) in enumerate(zip(transformations, offsets, strict=True))
    )
    params: dict[str, object] = {
        "envelope": pointers,
        "max_bytes": spec.MAX_EVENT_BYTES,
        "integrations_ptr": json_pointer("integrations"),
        "keys": key_pointers,
        "context_ptr": json_pointer("context"),
        "id_ptrs": [json_pointer(name) for name in _IDS],
        "types": list(spec.EVENT_TYPES),
    }
    for t in transformations:
        conn.execute(f"CREATE OR REPLACE TEMP MACRO {_macro_name(t)}(v, p) AS ({t.predicate})")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _offsets AS "
        "SELECT filename, min(rowid) AS first_rowid FROM _raw WHERE line_no IS NULL GROUP BY filename"
    )
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _parsed AS
        WITH lines AS (
            SELECT r.rowid AS seq, r.raw, f.file_idx, f.file_key, f.source_id, f.uploaded_at, r.forced,
                   coalesce(r.line_no, r.rowid - o.first_rowid + 1) AS line_no,
                   -- trim() copies the whole line: only lines starting with whitespace pay for it.
                   CASE WHEN r.raw IS NULL THEN true
                        WHEN r.raw[1] IN (' ', '\t', '\r') THEN trim(r.raw, ' \t\r') = ''
                        ELSE false END AS blank,
                   CASE WHEN starts_with(r.raw, '{{') THEN true
                        WHEN r.raw[1] IN (' ', '\t', '\r') THEN starts_with(ltrim(r.raw, ' \t\r'), '{{')
                        ELSE false END AS is_object,
                   r.extra IS NOT NULL AS has_ctrl,
                   strlen(r.raw) AS nbytes
            FROM _raw r
            JOIN _chunk_files f ON f.path = r.filename
            LEFT JOIN _offsets o ON o.filename = r.filename
        )
        SELECT seq, file_idx, file_key, source_id, uploaded_at, forced, line_no, blank, has_ctrl, nbytes,
               is_object, b, event_type, id_kinds,
               -- A line without a message id gets one from its content (numbered below), so a file uploaded
               -- again with lines added or moved loads only what is new.
               coalesce(nullif(trim(b[2]), ''), 'cdp-' || md5(raw)) AS message_id,
               {id_hash("message_id")} AS id_hash,
               CASE WHEN b IS NOT NULL THEN TRY(hash(json_keys(raw, $keys))) END AS keys_hash,
               -- RudderStack fails an event whose context is neither an object nor null. A line with a
               -- context ip or library name has an object there; only the others (rare: every SDK names
               -- its library) are parsed again to look.
               CASE WHEN b IS NOT NULL AND b[11] IS NULL AND b[17] IS NULL
                    THEN json_type(raw, $context_ptr) NOT IN ('OBJECT', 'NULL') END AS bad_context,
               -- Only for the rare lines that are not objects: valid JSON of another kind, or not JSON at all.
               CASE WHEN NOT is_object AND NOT blank AND NOT has_ctrl THEN json_valid(raw) END AS other_json,
               -- A JSON null reads as SQL NULL like a missing key; only then look for an explicit null (the
               -- text search is a cheap first test: the key may be a nested one, in properties say).
               CASE WHEN b IS NOT NULL AND b[{len(ENVELOPE)}] IS NULL
                    THEN regexp_matches(raw, '"integrations"\\s*:\\s*null')
                         AND json_type(raw, $integrations_ptr) = 'NULL' END AS integrations_null,
               CASE
                   WHEN forced IS NOT NULL THEN forced
                   WHEN blank THEN 'blank'
                   WHEN has_ctrl THEN 'invalid_json'
                   WHEN nbytes > $max_bytes THEN 'oversized'
                   WHEN NOT is_object THEN CASE WHEN other_json THEN 'not_an_object' ELSE 'invalid_json' END
                   WHEN b IS NULL THEN 'invalid_json'
                   WHEN event_type IS NULL OR NOT list_contains($types, event_type) THEN 'unknown_type'
                   WHEN coalesce(trim({_id("anonymousId")}), '') = '' AND coalesce(trim({_id("userId")}), '') = ''
                       THEN 'missing_ids'
                   WHEN bad_context THEN 'context_not_an_object'
               END AS discard_reason
               {extra_lists}
        FROM (SELECT *,
                     -- RudderStack's warehouse transformer lower-cases the type ("Track" is a track call).
                     CASE WHEN list_contains($types, b[1]) THEN b[1] ELSE lower(b[1]) END AS event_type,
                     -- The JSON kinds of the ids, looked at only where one reads like an object or array
                     -- (starts with [ or {{, 91 and 123: comparing codes is the cheapest first test).
                     CASE WHEN {" OR ".join(f"ascii(b[{i}]) IN (91, 123)" for i in _IDS.values())}
                          THEN json_type(raw, $id_ptrs) END AS id_kinds
              FROM (SELECT *, CASE WHEN NOT has_ctrl AND forced IS NULL AND nbytes <= $max_bytes AND is_object
                                   THEN TRY(json_extract_string(raw, $envelope)) END AS b
                    FROM lines))
        """,
        params,
    )
    _number_content_ids(conn)
    _map_event_tables(conn)
    _find_seen(conn)
    transform_rules = " ".join(f"WHEN {_macro_name(t)}(t{i}, $p{i}) THEN $n{i}" for i, t in enumerate(transformations))
    rule_params: dict[str, object] = {
        "source_types": list(spec.SOURCE_TYPES),
        "source_type_names": list(spec.SOURCE_TYPES.values()),
        "type_names": list(spec.TYPE_TABLES),
        "type_tables": list(spec.TYPE_TABLES.values()),
        "dest_id": destination.id,
        "dest_type": destination.type,
    }
    for i, t in enumerate(transformations):
        rule_params[f"p{i}"] = list(t.parameters)
        rule_params[f"n{i}"] = f"transformation: {t.name}"
    integrations = f"b[{len(ENVELOPE)}]"
    routing = routing_rule_sql(integrations, "integrations_null", "rt[1]", "rt[2]")
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _cls AS
        WITH v AS (
            SELECT p.*,
                CASE WHEN b IS NOT NULL THEN {routing} END AS route_rule
            FROM (SELECT *, CASE WHEN starts_with({integrations}, '{{')
                                 THEN json_extract({integrations}, $routing)::VARCHAR[] END AS rt
                  FROM _parsed) p
        ),
        -- Duplicates: every copy of a message id after its first in the batch, and every copy of an id an
        -- earlier load recorded (`_seen`). Computed on narrow rows (id, seq), then joined back: a window
        -- over the wide rows would materialize them all.
        -- (`firsts` reads `_parsed`, not `v`: a second reader of `v` would make the engine store it first.)
        firsts AS (
            SELECT message_id, min(seq) AS first_seq FROM _parsed WHERE discard_reason IS NULL GROUP BY message_id
        ), d AS (
            SELECT v.*,
                discard_reason IS NULL AND (v.seq > f.first_seq OR s.message_id IS NOT NULL) AS is_duplicate,
                CASE {transform_rules or "WHEN false THEN NULL"} END AS transform_rule
            FROM v
            LEFT JOIN firsts f ON f.message_id = v.message_id
            LEFT JOIN _seen s ON s.message_id = v.message_id
        ), s AS (
            SELECT d.*,
                CASE
                    WHEN discard_reason = 'blank' THEN 'blank'
                    WHEN discard_reason IS NOT NULL THEN 'discarded'
                    WHEN is_duplicate THEN 'duplicate'
                    WHEN route_rule IS NOT NULL OR transform_rule IS NOT NULL THEN 'filtered'
                    ELSE 'loaded'
                END AS status,
                {_instant(6)} AS u_received,
                {_instant(7)} AS u_sent,
                {_instant(8)} AS u_original,
                {_instant(9)} AS u_timestamp
            FROM d
        ), m AS (
            SELECT s.*,
                {_to_millisecond("u_received")} AS p_received,
                {_to_millisecond("u_sent")} AS p_sent,
                {_to_millisecond("u_original")} AS p_original,
                {_to_millisecond("u_timestamp")} AS p_timestamp,
                {_to_millisecond("epoch_us(uploaded_at)")} AS p_uploaded
            FROM s
        ), t AS (
            SELECT m.*,
                coalesce(p_received, p_uploaded) AS received_us,
                coalesce(p_sent, p_received, p_uploaded) AS sent_us,
                coalesce(p_original, p_received, p_uploaded) AS original_us
            FROM m
        )
        SELECT t.seq, t.file_idx, t.file_key, t.line_no, t.status, t.keys_hash,
            CASE WHEN status = 'discarded' THEN discard_reason
                 WHEN status = 'filtered' THEN coalesce(route_rule, transform_rule) END AS reason,
            t.message_id, t.id_hash,
            {_id_rejects()} AS rejects,
            t.event_type,
            CASE WHEN t.event_type = 'track' THEN b[5] END AS event_text,
            e.table_name AS event_table,
            list_extract($type_tables, list_position($type_names, t.event_type)) AS type_table,
            nullif({_id("anonymousId")}, '') AS anonymous_id,
            nullif({_id("userId")}, '') AS user_id,
            make_timestamptz(sent_us) AS sent_at,
            -- RudderStack's clock-skew rule: the device's offset is removed from the server time (a
            -- correction that leaves the timestamp range gives the server time).
            coalesce(
                make_timestamptz(p_timestamp),
                TRY(make_timestamptz(received_us - (sent_us - original_us))),
                make_timestamptz(received_us)
            ) AS "timestamp",
            make_timestamptz(received_us) AS received_at,
            make_timestamptz(original_us) AS original_timestamp,
            b[10] AS channel,
            coalesce(b[11], b[12]) AS context_ip,
            b[12] AS context_request_ip,
            b[11] AS context_passed_ip,
            t.source_id AS context_source_id,
            coalesce(list_extract($source_type_names, list_position($source_types, b[17])), b[17])
                AS context_source_type,
            $dest_id AS context_destination_id,
            $dest_type AS context_destination_type,
            CASE WHEN t.event_type IN ('page', 'screen') THEN coalesce(b[13], b[14]) END AS name,
            {_id("groupId")} AS group_id,
            {_id("previousId")} AS previous_id
        FROM t
        LEFT JOIN _event_tables e ON t.event_type = 'track' AND e.event_text = b[5]
        """,
        {**rule_params, "routing": routing_pointers()},
    )
    _payload_rejects(conn)
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _bad_lines AS
           SELECT c.seq, r.raw, r.extra FROM _cls c JOIN _raw r ON r.rowid = c.seq WHERE c.status = 'discarded'"""
    )
    return _split_loaded(conn)


def discard_late(conn: duckdb.DuckDBPyConnection, rejects: dict[int, str]) -> str | None:
    """Discard loaded lines found unloadable after classification (sequence number -> reason), as if
    classification had; returns the event type read directly, as `classify` does.

    A later copy of such a line's message id stays a duplicate: it was one when the batch was classified,
    and a load counts every line once.
    """
    params = {"seq": list(rejects), "reason": list(rejects.values())}
    conn.execute(
        """UPDATE _cls SET status = 'discarded', reason = r.reason
           FROM (SELECT unnest($seq) AS seq, unnest($reason) AS reason) r
           WHERE _cls.seq = r.seq AND _cls.status = 'loaded'""",
        params,
    )
    conn.execute(
        "INSERT INTO _bad_lines SELECT rowid, raw, extra FROM _raw WHERE rowid IN (SELECT unnest($seq))",
        {"seq": params["seq"]},
    )
    return _split_loaded(conn)


def _payload_rejects(conn: duckdb.DuckDBPyConnection) -> None:
    """Add to `rejects` the payload objects (properties, traits, userProperties) that are no object.

    Flattening skips them, so without this their values would vanish. Lines are grouped by `keys_hash`,
    under which a line whose payload object is empty, null or no object holds no keys there; one line
    a group is read in Python, and only the lines of the groups whose sample shows such a payload are
    parsed again to tell which are not objects (about 10 ms a million lines when there are none).
    """
    groups = conn.execute(
        "SELECT event_type, keys_hash, min(seq) FROM _cls WHERE status = 'loaded' GROUP BY ALL"
    ).fetchall()
    samples = dict(
        conn.execute(
            "SELECT rowid, raw FROM _raw WHERE rowid IN (SELECT unnest($seqs))", {"seqs": [g[2] for g in groups]}
        ).fetchall()
    )
    suspects: dict[str, list[int]] = {}
    for event_type, keys_hash, seq in groups:
        try:
            event = parse_sample(samples[seq])
        except UnreadableLine:
            continue  # discovery meets it and discards it
        # (A context that is no object discards the whole line, see `bad_context`.)
        objects = [obj for obj in spec.PAYLOAD_OBJECTS[event_type] if obj != "context"]
        holds_keys = [isinstance(event[obj], dict) and bool(event[obj]) for obj in objects if obj in event]
        if keys_hash is not None and not all(holds_keys):
            suspects.setdefault(event_type, []).append(keys_hash)
    for event_type, hashes in suspects.items():
        objects = [obj for obj in spec.PAYLOAD_OBJECTS[event_type] if obj != "context"]
        entries = ", ".join(
            f"struct_pack(column_name := $names[{i}], column_value := json_extract_string(raw, $ptrs[{i}]), "
            f"reason := $reason || CASE kinds[{i}] WHEN 'VARCHAR' THEN 'a string' WHEN 'ARRAY' THEN 'an array' "
            f"WHEN 'BOOLEAN' THEN 'a boolean' ELSE 'a number' END, "
            f"bad := coalesce(kinds[{i}] NOT IN ('OBJECT', 'NULL'), false))"
            for i in range(1, len(objects) + 1)
        )
        conn.execute(
            f"""UPDATE _cls SET rejects = list_concat(coalesce(_cls.rejects, []), p.found)
                FROM (SELECT seq, list_filter([{entries}], lambda e: e.bad) AS found
                      FROM (SELECT c.seq, r.raw, json_type(r.raw, $ptrs) AS kinds
                            FROM _cls c JOIN _raw r ON r.rowid = c.seq
                            WHERE c.status = 'loaded' AND c.event_type = $etype
                              AND c.keys_hash IN (SELECT unnest($hashes)))) p
                WHERE _cls.seq = p.seq AND len(p.found) > 0""",
            {
                "names": objects,
                "ptrs": [json_pointer(obj) for obj in objects],
                "reason": PAYLOAD_NOT_OBJECT,
                "etype": event_type,
                "hashes": hashes,
            },
        )


def _number_content_ids(conn: duckdb.DuckDBPyConnection) -> None:
    """Number the ids made from content: the n-th copy of a line in a file gets `-n`.

    RudderStack's gateway gives an event without a message id a new random one; a load needs the same
    id every time it reads the same line, and a copy of a line in the same file is another event, so the
    id is the content's hash and its copy number within its file.
    """
    conn.execute(
        f"""UPDATE _parsed SET message_id = n.message_id, id_hash = {id_hash("n.message_id")}
            FROM (SELECT seq, message_id || '-' || row_number() OVER (PARTITION BY file_idx, message_id ORDER BY seq)
                      AS message_id
                  FROM _parsed WHERE b IS NOT NULL AND nullif(trim(b[2]), '') IS NULL) n
            WHERE _parsed.seq = n.seq"""
    )


def _find_seen(conn: duckdb.DuckDBPyConnection) -> None:
    """`_seen`: the batch's message ids that earlier loads recorded.

    Candidates first, by hash (a scan of one integer column of the ledger), then the text of just those
    is compared. Two statements: asked in one query, DuckDB compares the text of every recorded id.
    """
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _seen_rows AS
            SELECT rowid AS row_id FROM {LEDGER}.messages
            WHERE id_hash IN (SELECT id_hash FROM _parsed WHERE b IS NOT NULL)"""
    )
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _seen AS
            SELECT DISTINCT message_id FROM {LEDGER}.messages
            WHERE rowid IN (SELECT row_id FROM _seen_rows) AND message_id IN (SELECT message_id FROM _parsed)"""
    )


def _split_loaded(conn: duckdb.DuckDBPyConnection) -> str | None:
    """Give each table's extraction its loaded lines as `_loaded_all` (seq, standard columns, raw).

    A copy of the loaded lines (`_loaded`) makes each table's extraction one filtered scan of just
    those lines; a join with `_raw` instead probes every staged line. The copy costs about what one
    probe does, so the lines of an event type that holds most of the batch (pages, in a web stream) are
    not copied: its one extraction joins `_raw` (view `_loaded_direct`). `track` never qualifies: its
    lines feed `tracks` and every event table, one probe each.
    """
    loaded = dict(conn.execute("SELECT event_type, count(*) FROM _cls WHERE status = 'loaded' GROUP BY 1").fetchall())
    total = sum(loaded.values())
    direct = next((t for t, n in loaded.items() if t in spec.EVENT_TYPES and t != "track" and 2 * n > total), None)
    # The semi-join on rowid lets the engine skip the other staged lines while it scans `_raw`: without
    # it, it builds the join's hash table from every staged line's text (0.25-0.3 s a 245k-line chunk,
    # against 0.12-0.15 s).
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _loaded AS
           WITH picked AS (SELECT * FROM _cls WHERE status = 'loaded' AND event_type IS DISTINCT FROM $direct)
           SELECT c.*, r.raw FROM picked c JOIN _raw r ON r.rowid = c.seq
           WHERE r.rowid IN (SELECT seq FROM picked)""",
        {"direct": direct},
    )
    # Views cannot take parameters: the type goes in as data, in a one-row table the view reads.
    conn.execute("CREATE OR REPLACE TEMP TABLE _direct AS SELECT $direct::VARCHAR AS event_type", {"direct": direct})
    conn.execute(
        """CREATE OR REPLACE TEMP VIEW _loaded_direct AS
           SELECT c.*, r.raw FROM _cls c JOIN _raw r ON r.rowid = c.seq
           WHERE c.status = 'loaded' AND c.event_type = (SELECT event_type FROM _direct)"""
    )
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW _loaded_all AS SELECT * FROM _loaded UNION ALL SELECT * FROM _loaded_direct"
    )
    return direct


def _map_event_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Name each track event's table in Python, through the one naming function."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT b[5] FROM _parsed WHERE event_type = 'track' AND b[5] IS NOT NULL"
        ).fetchall()
    ]
    tables = [event_table_name(name) or None for name in names]
    conn.execute("CREATE OR REPLACE TEMP TABLE _event_tables (event_text VARCHAR, table_name VARCHAR)")
    if names:
        conn.execute(
            "INSERT INTO _event_tables SELECT unnest($names), unnest($tables)",
            {"names": names, "tables": tables},
        )


def counts_by_file(conn: duckdb.DuckDBPyConnection) -> dict[int, dict[str, int]]:
    """Lines per status per file of the batch."""
    out: dict[int, dict[str, int]] = {}
    for file_idx, status, count in conn.execute("SELECT file_idx, status, count(*) FROM _cls GROUP BY ALL").fetchall():
        out.setdefault(file_idx, {})[status] = count
    return out
