"""RudderStack's `integrations` routing, decided in the warehouse for a whole batch at once.

The rules (rudder-server `FilterClientIntegrations`): a missing `integrations` counts as `{}`; one that is
present but not an object (null included) sends the event nowhere; `All` defaults to true and a
non-boolean `All` sends it nowhere; the destination's own key, matched exactly, wins when it is a boolean,
always includes the destination when it is an object, and otherwise `All` decides.

Destination keys are display names, case-sensitive: the warehouse is "Snowflake" in every environment,
so an event routed away from Snowflake in production is routed away from the local DuckDB too. Aliases
such as "Customer.io" are not accepted: RudderStack does not accept them either.
"""

from __future__ import annotations

WAREHOUSE_DESTINATION = "Snowflake"


def json_pointer(*keys: str) -> str:
    """A JSON pointer (RFC 6901) to nested keys; the one safe way to put a data key in a JSON path."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in keys)


def routing_pointers(destination: str = WAREHOUSE_DESTINATION) -> list[str]:
    """Pointers, within the `integrations` object, to the values routing reads: `All`, the destination."""
    return [json_pointer("All"), json_pointer(destination)]


def routing_rule_sql(integrations: str, is_null: str, all_flag: str, destination: str) -> str:
    """SQL giving the rule that routes an event away from the destination, or NULL when it is routed to it.

    `integrations` is the object's text (NULL when the key is missing or JSON null, `is_null` telling
    which); `all_flag` and `destination` are the JSON texts at `routing_pointers()` within it (SQL NULL
    when missing).
    """
    return f"""CASE
        WHEN {integrations} IS NULL AND {is_null} THEN 'routing: integrations is null'
        WHEN {integrations} IS NULL THEN NULL
        WHEN NOT starts_with({integrations}, '{{') THEN 'routing: integrations is not an object'
        WHEN {all_flag} IS NOT NULL AND {all_flag} NOT IN ('true', 'false')
            THEN 'routing: integrations.All is not a boolean'
        WHEN {destination} = 'true' OR starts_with({destination}, '{{') THEN NULL
        WHEN {destination} = 'false' THEN 'routing: integrations.{WAREHOUSE_DESTINATION} is false'
        WHEN {all_flag} = 'false' THEN 'routing: integrations.All is false'
        ELSE NULL
    END"""
