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

-- Each signal once per profile and channel it reaches, including the opt-outs of quarantined
-- identifiers (fail closed: see consent_profile_signals).
profile_signals as (

    select * from {{ ref('consent_profile_signals') }}

),

summary as (

    select
        profile_id,
        channel,
        {{ consent_summary_columns() }}
    from profile_signals
    group by profile_id, channel

),

decided as (

    select
        profile_id,
        channel,
        {{ consent_status_case() }} as status
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
    where {{ consent_decided_by('decided', 'signals') }}
    qualify row_number() over (
        partition by decided.profile_id, decided.channel
        order by signals.occurred_at desc nulls first, signals.consent_event_id
    ) = 1

)

select
    profiles.profile_id,
    channels.channel,
    {{ consent_eligibility_columns('decided.status', 'channels.channel') }},
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
