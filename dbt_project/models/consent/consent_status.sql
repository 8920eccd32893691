-- One row per profile and channel: may we send this person marketing on this channel, and why.
--
-- Precedence (reference-notes §4.3, issue 4), over every signal of every identifier the profile has
-- merged, from every source:
--   1. an erasure request beats everything, for every channel, and is never lifted;
--   2. a suppression (bounce, spam report, block) beats any opt-in; only a later, explicit
--      unsuppress lifts it;
--   3. an opt-out from any source or any merged identity holds until an explicit opt-in that is
--      strictly later than the latest opt-out (a tie keeps the opt-out; an undated opt-out, one a
--      source shows as a current state, cannot be shown to be older than any opt-in, so it holds);
--   4. otherwise an explicit opt-in makes the person `opted_in`;
--   5. otherwise the status is `unknown`: eligible only on channels that do not need an opt-in
--      (var `consent_opt_in_channels`).
-- Opt-ins that are not explicit (a mirrored `unsubscribed: false`, a rep clearing a CRM flag) never
-- make anyone `opted_in` and never reverse an opt-out.

{%- set opt_in_channels = var('consent_opt_in_channels') %}

with

profiles as (

    select distinct profile_id
    from {{ ref('identity_graph') }}

),

channels as (

    {%- for channel in var('consent_channels') %}
    select '{{ channel }}' as channel
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

-- Each signal once per profile it reaches: a signal naming two identifiers of one profile counts
-- once; one naming identifiers of two profiles counts for both. A signal for `all` channels (an
-- erasure request) counts on each.
profile_signals as (

    select distinct
        graph.profile_id,
        channels.channel,
        events.consent_event_id,
        events.source,
        events.kind,
        events.is_explicit,
        events.occurred_at,
        events.reason
    from {{ ref('consent_events') }} as events
    inner join {{ ref('identity_graph') }} as graph
        on graph.identifier_type = events.identifier_type
        and graph.identifier = events.identifier
    inner join channels
        on events.channel = channels.channel or events.channel = 'all'

),

-- The latest moment of each kind of signal (1/0 flags rather than booleans: every warehouse can
-- take the max of a number).
summary as (

    select
        profile_id,
        channel,
        max(case when kind = 'erasure' then 1 else 0 end) as has_erasure,
        max(case when kind = 'suppression' and occurred_at is null then 1 else 0 end) as has_undated_suppression,
        max(case when kind = 'suppression' then occurred_at end) as last_suppression_at,
        max(case when kind = 'unsuppress' and is_explicit then occurred_at end) as last_unsuppress_at,
        max(case when kind = 'opt_out' and occurred_at is null then 1 else 0 end) as has_undated_opt_out,
        max(case when kind = 'opt_out' then occurred_at end) as last_opt_out_at,
        max(case when kind = 'opt_in' and is_explicit then occurred_at end) as last_explicit_opt_in_at
    from profile_signals
    group by profile_id, channel

),

decided as (

    select
        profile_id,
        channel,
        case
            when has_erasure = 1
                then 'erased'
            when has_undated_suppression = 1
                or (
                    last_suppression_at is not null
                    and (last_unsuppress_at is null or last_unsuppress_at <= last_suppression_at)
                )
                then 'suppressed'
            when has_undated_opt_out = 1
                or (
                    last_opt_out_at is not null
                    and (last_explicit_opt_in_at is null or last_explicit_opt_in_at <= last_opt_out_at)
                )
                then 'opted_out'
            when last_explicit_opt_in_at is not null
                then 'opted_in'
            else 'unknown'
        end as status
    from summary

),

-- The signal that decided the status: the latest one of the deciding kind (an undated one first, as
-- it holds now). For `unknown`, the latest signal of any kind, to show what was seen and not counted.
deciding_signal as (

    select
        decided.profile_id,
        decided.channel,
        signals.consent_event_id,
        signals.source,
        signals.occurred_at,
        signals.reason
    from decided
    inner join profile_signals as signals
        on signals.profile_id = decided.profile_id
        and signals.channel = decided.channel
    where (decided.status = 'erased' and signals.kind = 'erasure')
        or (decided.status = 'suppressed' and signals.kind = 'suppression')
        or (decided.status = 'opted_out' and signals.kind = 'opt_out')
        or (decided.status = 'opted_in' and signals.kind = 'opt_in' and signals.is_explicit)
        or decided.status = 'unknown'
    qualify row_number() over (
        partition by decided.profile_id, decided.channel
        order by signals.occurred_at desc nulls first, signals.consent_event_id
    ) = 1

)

select
    profiles.profile_id,
    channels.channel,
    coalesce(decided.status, 'unknown') as status,
    coalesce(decided.status, 'unknown') = 'opted_in'
        or (
            coalesce(decided.status, 'unknown') = 'unknown'
            and channels.channel not in {{ sql_list(opt_in_channels) }}
        ) as eligible,
    channels.channel in {{ sql_list(opt_in_channels) }} as needs_opt_in,
    deciding_signal.source,
    deciding_signal.occurred_at as updated_at,
    deciding_signal.reason,
    deciding_signal.consent_event_id as decided_by
from profiles
cross join channels
left join decided
    on decided.profile_id = profiles.profile_id
    and decided.channel = channels.channel
left join deciding_signal
    on deciding_signal.profile_id = profiles.profile_id
    and deciding_signal.channel = channels.channel
