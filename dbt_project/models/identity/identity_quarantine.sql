-- Hub guard: identifiers linked to more than var('identity_max_links_per_type') distinct identifiers
-- of one type (a shared kiosk device, a support@ address on hundreds of leads, a hard-coded QA user
-- id). One row per (identifier, linked type) over the limit. A quarantined identifier is not
-- stitched: identity_graph ignores every edge that touches it and gives it no profile, while the
-- identifiers it was linked to keep their other links (reverse-etl-identity-consent.md §3.4 step 3).
-- The counts are over all edges, before any quarantine.

{%- set limit = var('identity_max_links_per_type') | int %}

with links as (

    select identifier_type_a as identifier_type, identifier_a as identifier,
        identifier_type_b as linked_identifier_type, identifier_b as linked_identifier
    from {{ ref('identity_edges') }}
    where not (identifier_type_a = identifier_type_b and identifier_a = identifier_b)
    union
    select identifier_type_b, identifier_b, identifier_type_a, identifier_a
    from {{ ref('identity_edges') }}
    where not (identifier_type_a = identifier_type_b and identifier_a = identifier_b)

)

select
    identifier,
    identifier_type,
    linked_identifier_type,
    count(*) as linked_count,
    {{ limit }} as max_links,
    'linked to ' || cast(count(*) as {{ dbt.type_string() }}) || ' identifiers of type '
        || linked_identifier_type || ' (limit {{ limit }})' as reason
from links
group by identifier, identifier_type, linked_identifier_type
having count(*) > {{ limit }}
