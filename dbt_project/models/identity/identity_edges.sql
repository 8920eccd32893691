-- Identifier pairs that occur together in one record, one row per source and pair, with when the
-- pair was first and last seen and in how many records. A pair is stored once, its ends ordered by
-- (identifier_type, identifier). A self edge (identifier_a = identifier_b) says the identifier was
-- seen at all: every valid identifier has one, so one seen on its own (a lone anonymous visitor)
-- still becomes a node of identity_graph. Only valid identifiers (identity_observations with no
-- reject_reason) take part.

with valid as (

    select distinct
        source,
        record_key,
        identifier_type,
        identifier,
        first_seen,
        last_seen,
        records
    from {{ ref('identity_observations') }}
    where reject_reason is null

)

select
    a.source,
    a.identifier_type as identifier_type_a,
    a.identifier as identifier_a,
    b.identifier_type as identifier_type_b,
    b.identifier as identifier_b,
    min(a.first_seen) as first_seen,
    max(a.last_seen) as last_seen,
    sum(a.records) as records
from valid as a
inner join valid as b
    on b.source = a.source
    and b.record_key = a.record_key
    and (
        a.identifier_type < b.identifier_type
        or (a.identifier_type = b.identifier_type and a.identifier <= b.identifier)
    )
group by a.source, a.identifier_type, a.identifier, b.identifier_type, b.identifier
