-- identity_graph as identity_merges last compared it: rebuilt after identity_merges, so the next run
-- of identity_merges can tell which profile ids changed. Not for other uses: read identity_graph.

-- depends_on: {{ ref('identity_merges') }}

-- snapshot_at names this snapshot: identity_merges logs a change once per snapshot it compares with,
-- so the same change seen again by a run that stopped before this model is not logged twice, while
-- the same pair changing again later (a merge undone and redone) is a new event and is logged.
select
    identifier_type,
    identifier,
    profile_id,
    {{ identity_timestamptz("'" ~ run_started_at.isoformat() ~ "'") }} as snapshot_at
from {{ ref('identity_graph') }}
