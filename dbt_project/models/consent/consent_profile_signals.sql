-- Each consent signal once per profile and channel it reaches: consent_status and
-- consent_contact_points decide from these rows. A signal naming two identifiers of one profile
-- counts once; one naming identifiers of two profiles counts for both. A signal for `all` channels (an
-- erasure request) counts on each.
--
-- Fail closed (reference §4.3 rule 8): a signal on a quarantined identifier (a hub, identity_quarantine)
-- reaches no profile through identity_graph, which leaves hubs out. Its opt-outs, suppressions and
-- erasures are not dropped for that: they reach the profile of every identifier the hub was seen
-- with (identity_edges, one hop). Over-reaching is the safe side: it can only take consent away.
-- Opt-ins on a hub reach no one (a shared identifier's opt-in is nobody's attributable consent).
-- `via_quarantined` marks the rows that got there that way.

with

channels as (

    {%- for channel in var('consent_channels') %}
    select '{{ channel }}' as channel
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

quarantined as (

    select distinct identifier_type, identifier
    from {{ ref('identity_quarantine') }}

),

-- every identifier a quarantined identifier shares a record with
quarantine_neighbours as (

    select
        quarantined.identifier_type,
        quarantined.identifier,
        edges.identifier_type_b as linked_identifier_type,
        edges.identifier_b as linked_identifier
    from quarantined
    inner join {{ ref('identity_edges') }} as edges
        on edges.identifier_type_a = quarantined.identifier_type
        and edges.identifier_a = quarantined.identifier

    union

    select
        quarantined.identifier_type,
        quarantined.identifier,
        edges.identifier_type_a,
        edges.identifier_a
    from quarantined
    inner join {{ ref('identity_edges') }} as edges
        on edges.identifier_type_b = quarantined.identifier_type
        and edges.identifier_b = quarantined.identifier

),

targets as (

    select
        events.consent_event_id,
        events.source,
        events.channel,
        events.kind,
        events.is_explicit,
        events.occurred_at,
        events.reason,
        events.identifier_type as target_type,
        events.identifier as target,
        false as via_quarantined
    from {{ ref('consent_events') }} as events

    union all

    select
        events.consent_event_id,
        events.source,
        events.channel,
        events.kind,
        events.is_explicit,
        events.occurred_at,
        events.reason,
        neighbours.linked_identifier_type,
        neighbours.linked_identifier,
        true as via_quarantined
    from {{ ref('consent_events') }} as events
    inner join quarantine_neighbours as neighbours
        on neighbours.identifier_type = events.identifier_type
        and neighbours.identifier = events.identifier
    where events.kind in {{ consent_restrictive_kinds() }}

)

select
    graph.profile_id,
    channels.channel,
    targets.consent_event_id,
    targets.source,
    targets.kind,
    targets.is_explicit,
    targets.occurred_at,
    targets.reason,
    -- true only when no identifier of the profile is named by the signal itself
    min(case when targets.via_quarantined then 1 else 0 end) = 1 as via_quarantined
from targets
inner join {{ ref('identity_graph') }} as graph
    on graph.identifier_type = targets.target_type
    and graph.identifier = targets.target
inner join channels
    on targets.channel = channels.channel or targets.channel = 'all'
group by
    graph.profile_id,
    channels.channel,
    targets.consent_event_id,
    targets.source,
    targets.kind,
    targets.is_explicit,
    targets.occurred_at,
    targets.reason
