-- One row per stitched identifier: its profile (connected component of identity_edges, quarantined
-- identifiers left out) and when it was first and last seen. Computed in the warehouse by the
-- identity_components materialization (macros/identity/identity_components.sql).
--
-- var('identity_edges_relation'), when set, names a relation with identity_edges' columns to stitch
-- instead (`cdp bench identity` points it at its generated edges); no quarantine applies then.

{{ config(materialized='identity_components') }}

{%- set override = var('identity_edges_relation', none) %}

{%- if override %}

select identifier_type_a, identifier_a, identifier_type_b, identifier_b, first_seen, last_seen
from {{ override }}

{%- else %}

with quarantined as (

    select distinct identifier_type, identifier
    from {{ ref('identity_quarantine') }}

)

select
    edges.identifier_type_a,
    edges.identifier_a,
    edges.identifier_type_b,
    edges.identifier_b,
    edges.first_seen,
    edges.last_seen
from {{ ref('identity_edges') }} as edges
left join quarantined as quarantined_a
    on quarantined_a.identifier_type = edges.identifier_type_a
    and quarantined_a.identifier = edges.identifier_a
left join quarantined as quarantined_b
    on quarantined_b.identifier_type = edges.identifier_type_b
    and quarantined_b.identifier = edges.identifier_b
where quarantined_a.identifier is null
    and quarantined_b.identifier is null

{%- endif %}
