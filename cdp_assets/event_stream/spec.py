"""RudderStack's warehouse schema: event types, the tables they land in and their standard columns.

Column kinds are RudderStack's (`int`, `float`, `boolean`, `datetime`, `string`); each engine maps them
to its own types.
"""

from __future__ import annotations

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
SCHEMA = "event_stream"
DISCARDS_TABLE = "rudder_discards"
USERS_TABLE = "users"

# The table each event type lands in (track events also land in their own event table).
TYPE_TABLES = {
    "identify": "identifies",
    "track": "tracks",
    "page": "pages",
    "screen": "screens",
    "group": "groups",
    "alias": "aliases",
}
STANDARD_EVENT_TABLES = tuple(TYPE_TABLES.values())

# Columns every event table has, in the order they are created.
COMMON_COLUMNS: dict[str, str] = {
    "id": "string",
    "anonymous_id": "string",
    "user_id": "string",
    "sent_at": "datetime",
    "timestamp": "datetime",
    "received_at": "datetime",
    "original_timestamp": "datetime",
    "channel": "string",
    "context_ip": "string",
    "context_request_ip": "string",
    "context_passed_ip": "string",
    "context_source_id": "string",
    "context_source_type": "string",
    "context_destination_id": "string",
    "context_destination_type": "string",
    "uuid_ts": "datetime",
}
TYPE_COLUMNS: dict[str, dict[str, str]] = {
    "track": {"event_text": "string", "event": "string"},
    "page": {"name": "string"},
    "screen": {"name": "string"},
    "group": {"group_id": "string"},
    "alias": {"previous_id": "string"},
    "identify": {},
}
DISCARDS_COLUMNS: dict[str, str] = {
    "table_name": "string",
    "row_id": "string",
    "column_name": "string",
    "column_value": "string",
    "received_at": "datetime",
    "uuid_ts": "datetime",
    "reason": "string",
}

# The objects RudderStack documents in `context`: a load starts knowing them, so shape discovery groups
# events by their keys from its first round instead of finding them in samples first.
CONTEXT_OBJECTS = ("app", "campaign", "device", "library", "network", "os", "page", "screen", "traits")
# The objects whose keys become columns, per type, the one whose value a column takes first when keys
# of several collide. Context is flattened for every type (under the `context_` prefix); properties for
# track/page/screen; root traits for identify/group/alias; userProperties for track (the event table)
# and identify. RudderStack's transformer sets them in the reverse order, each overwriting the last,
# with null and "" skipped: the same value wins.
PAYLOAD_OBJECTS: dict[str, tuple[str, ...]] = {
    "track": ("context", "userProperties", "properties"),
    "page": ("context", "properties"),
    "screen": ("context", "properties"),
    "identify": ("context", "traits", "userProperties"),
    "group": ("context", "traits"),
    "alias": ("context", "traits"),
}
# The root objects of every type, known to every load from its start (see discovery.KnownPaths).
ROOT_OBJECTS = tuple(sorted({obj for objects in PAYLOAD_OBJECTS.values() for obj in objects}))
# An identify's payload key named `user_id` (a trait `userId`, say) is renamed to this column, as
# RudderStack does, rather than colliding with the standard column.
IDENTIFY_USER_ID_COLUMN = "_user_id"
# Payload keys that a standard column is read from (so they are not collisions): context.ip is the
# passed ip; a page's or screen's name falls back to properties.name, which the JS SDK always sets.
STANDARD_ALIASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "context_ip": (("context", "ip"),),
    "name": (("properties", "name"),),
}

# Source types RudderStack writes in `context_source_type`, by the SDK's library name.
SOURCE_TYPES = {
    "analytics-python": "Python",
    "analytics-node": "Node",
    "RudderLabs JavaScript SDK": "Javascript",
}

MAX_COLUMNS = 1600
MAX_EVENT_BYTES = 32 * 1024


def standard_columns(event_type: str) -> dict[str, str]:
    return {**COMMON_COLUMNS, **TYPE_COLUMNS[event_type]}


def users_columns(identifies_columns: dict[str, str]) -> dict[str, str]:
    """`users` has the identifies schema without `user_id`; its `id` is the user id."""
    return {name: kind for name, kind in identifies_columns.items() if name != "user_id"}
