-- identity_graph as identity_merges last compared it: rebuilt after identity_merges, so the next run
-- of identity_merges can tell which profile ids changed. Not for other uses: read identity_graph.

-- depends_on: {{ ref('identity_merges') }}

select identifier_type, identifier, profile_id
from {{ ref('identity_graph') }}
