-- Hub guard: identifiers shared by several people (a kiosk's device, a support@ address on hundreds
-- of leads, a hard-coded QA user id), found by how many identifiers of one type they link to. One row
-- per (identifier, linked type) over that pair's cap. A quarantined identifier is not stitched:
-- identity_graph ignores every edge that touches it and gives it no profile, while the identifiers it
-- was linked to keep their other links (reverse-etl-identity-consent.md §3.4 step 3). Consent still
-- reads a quarantined identifier's opt-outs (consent_profile_signals), so quarantine never loses one.
-- The counts are over all edges, before any quarantine.
--
-- The cap depends on the pair (identity_link_cap): sharing shows on the side that names a device or
-- a record, not on the person's side. One person's user id, email or CRM record legitimately gathers
-- any number of anonymous ids (every browser, phone and cleared cookie is a new one), so links *to*
-- anonymous ids are uncapped by default; a cap there quarantined loyal users with 100+ devices, whose
-- opt-out then reached nobody. A device linked to many user ids, or an email on many CRM records, is
-- the shared identifier the reference means, and stays capped.

with links as (

    select identifier_type_a as identifier_type, identifier_a as identifier,
        identifier_type_b as linked_identifier_type, identifier_b as linked_identifier
    from {{ ref('identity_edges') }}
    where not (identifier_type_a = identifier_type_b and identifier_a = identifier_b)
    union
    select identifier_type_b, identifier_b, identifier_type_a, identifier_a
    from {{ ref('identity_edges') }}
    where not (identifier_type_a = identifier_type_b and identifier_a = identifier_b)

),

counted as (

    select
        identifier,
        identifier_type,
        linked_identifier_type,
        count(*) as linked_count,
        {{ identity_link_cap('identifier_type', 'linked_identifier_type') }} as max_links
    from links
    group by identifier, identifier_type, linked_identifier_type

)

select
    identifier,
    identifier_type,
    linked_identifier_type,
    linked_count,
    max_links,
    'linked to ' || cast(linked_count as {{ dbt.type_string() }}) || ' identifiers of type '
        || linked_identifier_type || ' (limit ' || cast(max_links as {{ dbt.type_string() }}) || ')' as reason
from counted
-- an uncapped pair has a null cap: never over it
where linked_count > max_links
