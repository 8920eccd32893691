"""Shape discovery: which payload paths a batch's loaded events hold, without parsing every line in Python.

`discover` groups the events by the keys they hold at every known object and reads one event per group;
`KnownPaths` (the objects known so far) lives for the whole load and in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from cdp_assets.event_stream import spec
from cdp_assets.event_stream.flatten import Path, Shape
from cdp_assets.event_stream.routing import json_pointer
from cdp_assets.event_stream.sample_json import MAX_OBJECT_DEPTH, UnreadableLine, parse_sample

# Shape discovery stops after this many rounds (each round groups the events by the keys they hold at
# every known path and reads one event per new group); real streams settle in two or three.
MAX_DISCOVERY_ROUNDS = 8
# Grouping by keys learns one more level of nesting a round at worst (a chain of events, each nesting
# deeper where only the one before was read). After this many rounds, and when asked to be thorough,
# events are grouped by the whole structure of their payload instead: costlier, but one round reads
# every distinct shape, so discovery always settles.
KEY_GROUPING_ROUNDS = 3


@dataclass
class KnownPaths:
    """Payload objects known to exist (or documented to: spec.CONTEXT_OBJECTS); discovery groups events
    by the keys they hold at each of them.

    Kept for the whole load and persisted in the ledger, so a load starts where the last one ended.
    """

    objects: set[Path] = field(
        default_factory=lambda: (
            {(obj,) for obj in spec.ROOT_OBJECTS} | {("context", obj) for obj in spec.CONTEXT_OBJECTS}
        )
    )


GroupKey = tuple[str, str | None]  # (event type, event table)


class UnreadableSample(Exception):
    """A sampled line cannot be loaded after all (see sample_json); the loader discards it, with every
    other loaded line of the batch that fails the same way (see `unreadable_lines`), and writes again."""

    def __init__(self, seq: int, reason: str):
        super().__init__(f"line {seq} of the batch cannot be loaded: {reason}")
        self.seq = seq
        self.reason = reason


def key_pointers(known: KnownPaths) -> list[str]:
    """The JSON pointers whose keys group events in shape discovery, in a fixed order."""
    return [json_pointer(*p) for p in sorted(known.objects)]


def discover(
    conn: duckdb.DuckDBPyConnection,
    known: KnownPaths,
    hashed_pointers: list[str] | None = None,
    thorough: bool = False,
) -> dict[GroupKey, Shape]:
    """The payload paths of the loaded events, per (type, event table).

    Events are grouped by the keys they hold at every known object; one event per group is read in
    Python, and objects it reveals are added until none is new. Events of one group hold the same
    keys everywhere that is known, so every distinct set of paths is read. (A value that is an object
    where others have a scalar shows up at extraction, see writer.TableWriter.prepare; the loader then
    asks for a `thorough` discovery, which groups by the payload's whole structure, see
    KEY_GROUPING_ROUNDS.)
    """
    shapes: dict[GroupKey, Shape] = {}
    read: set[int] = set()
    payload = [json_pointer(obj) for obj in spec.ROOT_OBJECTS]
    # After a first round grouped by classification's `keys_hash`: the groups whose events must be
    # grouped again by the keys at the objects that round found (see `_regroup`); None: all events.
    regroup: list[int | None] | None = None
    for round_ in range(MAX_DISCOVERY_ROUNDS):
        pointers = key_pointers(known)
        where, params = "", {}
        if thorough or round_ >= KEY_GROUPING_ROUNDS:
            grouping = "hash(list_transform(json_extract(raw, $payload), lambda x: json_structure(x)))"
            params = {"payload": payload}
        elif round_ == 0 and pointers == hashed_pointers:
            # Classification hashed every line's keys at the objects known when the chunk began.
            grouping = "keys_hash"
        else:
            grouping = "hash(json_keys(raw, $pointers))"
            params = {"pointers": pointers}
            if regroup is not None:
                where = "WHERE keys_hash IN (SELECT unnest($regroup)) OR keys_hash IS NULL"
                params["regroup"] = [g for g in regroup if g is not None]
        source = "_cls WHERE status = 'loaded'" if grouping == "keys_hash" else f"_loaded_all {where}"
        groups = conn.execute(
            f"""SELECT event_type, event_table, min(seq) AS first_seq, {grouping} AS grp FROM {source}
                GROUP BY event_type, event_table, grp""",
            params,
        ).fetchall()
        todo = {seq: (etype, etable, grp) for etype, etable, seq, grp in groups if seq not in read}
        if not todo:
            break
        before = set(known.objects)
        samples: dict[int | None, list[dict]] = {}
        for seq, raw in conn.execute(
            "SELECT rowid, raw FROM _raw WHERE rowid IN (SELECT unnest($seqs))", {"seqs": list(todo)}
        ).fetchall():
            read.add(seq)
            etype, etable, grp = todo[seq]
            try:
                event = parse_sample(raw)
            except UnreadableLine as exc:
                raise UnreadableSample(seq, exc.reason) from None
            samples.setdefault(grp, []).append(event)
            shape = shapes.setdefault((etype, etable), Shape())
            shape.add_event(event, spec.PAYLOAD_OBJECTS[etype], seq)
            known.objects |= shape.objects
        # Nothing new learnt, or one round by structure has read every distinct shape: settled.
        if len(known.objects) == len(before) or thorough or round_ >= KEY_GROUPING_ROUNDS:
            break
        regroup = _regroup(samples, known.objects - before, before) if grouping == "keys_hash" else None
    else:
        raise RuntimeError(f"event shapes did not settle in {MAX_DISCOVERY_ROUNDS} rounds")
    return shapes


def _regroup(samples: dict[int | None, list[dict]], new: set[Path], hashed: set[Path]) -> list[int | None] | None:
    """The `keys_hash` groups whose events may differ in their keys at the objects just found (`new`).

    Events of a group hold the same keys at every object that was hashed. A new object's outermost
    ancestor that was not hashed is a key of a hashed object: where the group's sample lacks that key,
    so does every event of the group, which therefore holds nothing at the new object. Only groups whose
    sample holds it are grouped again. None (every event) when a new object has no hashed ancestor.
    """
    heads = set()
    for path in new:
        head = next(path[: i + 1] for i in range(len(path)) if path[: i + 1] not in hashed)
        if head[:-1] not in hashed:
            return None
        heads.add(head)
    return [grp for grp, events in samples.items() if any(_holds_key(e, h) for e in events for h in heads)]


def _holds_key(event: dict, path: Path) -> bool:
    node: object = event
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return isinstance(node, dict) and path[-1] in node


def unreadable_lines(conn: duckdb.DuckDBPyConnection, found: UnreadableSample) -> dict[int, str]:
    """The loaded lines of the batch that cannot be loaded (sequence number -> discard reason): the one
    discovery met, and every line that nests objects too deeply.

    Only lines with more than MAX_OBJECT_DEPTH opening braces can nest that deep, so the rest are not
    read in Python. (Counting the braces of every line costs about half a second a million lines, so it
    runs only in a batch where discovery met such a line.)
    """
    rejects = {found.seq: found.reason}
    candidates = conn.execute(
        "SELECT seq, raw FROM _loaded_all WHERE strlen(raw) - strlen(replace(raw, '{', '')) > $depth",
        {"depth": MAX_OBJECT_DEPTH},
    ).fetchall()
    for seq, raw in candidates:
        try:
            parse_sample(raw)
        except UnreadableLine as exc:
            rejects[seq] = exc.reason
    return rejects
