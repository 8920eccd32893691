-- One row per email address and channel: may marketing on this channel go to this address, and why.
-- Reference §4.3 rule 1: the grain of consent is the contact point, and a person's eligibility is
-- derived from their contact points. consent_status decides per profile; a profile with two
-- addresses can be `opted_in` there (an explicit opt-in on its new address) while its old address
-- still has an opt-out in effect. Marketing feeds check the address they send here too.
--
-- The signals that reach an address, decided with the same precedence as consent_status
-- (macros consent_summary_columns / consent_status_case):
--   * every signal that names the address itself;
--   * every opt-out, suppression and erasure that reaches the address's profile (including those of
--     quarantined identifiers it was seen with, see consent_profile_signals): fail closed, a
--     person-level opt-out covers all their addresses (rule 3: any opt-out still in effect wins);
--   * opt-ins and unsuppresses that reach the profile but name no address at all (a logged-in
--     preference centre acting for the person). An opt-in that names another address is about that
--     address only: it never reverses an opt-out on this one (rule 4: only an opt-in on the same
--     contact point, after the opt-out, reverses it).
-- Addresses come from identity_graph and from the signals themselves, so an address with an opt-out
-- but no profile (quarantined, say) still has its row.


with

channels as (

    {%- for channel in var('consent_channels') %}
    select '{{ channel }}' as channel
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

graph_emails as (

    select identifier as email, profile_id
    from {{ ref('identity_graph') }}
    where identifier_type = 'email'

),

addresses as (

    select email from graph_emails
    union
    select identifier from {{ ref('consent_events') }} where identifier_type = 'email'

),

-- signals that name an email address
naming_an_email as (

    select distinct consent_event_id
    from {{ ref('consent_events') }}
    where identifier_type = 'email'

),

reaching as (

    -- named on the address itself
    select
        events.identifier as email,
        channels.channel,
        events.consent_event_id,
        events.source,
        events.kind,
        events.is_explicit,
        events.occurred_at,
        events.reason
    from {{ ref('consent_events') }} as events
    inner join channels
        on events.channel = channels.channel or events.channel = 'all'
    where events.identifier_type = 'email'

    union

    -- through the address's profile
    select
        graph_emails.email,
        signals.channel,
        signals.consent_event_id,
        signals.source,
        signals.kind,
        signals.is_explicit,
        signals.occurred_at,
        signals.reason
    from {{ ref('consent_profile_signals') }} as signals
    inner join graph_emails
        on graph_emails.profile_id = signals.profile_id
    left join naming_an_email
        on naming_an_email.consent_event_id = signals.consent_event_id
    where signals.kind in {{ consent_restrictive_kinds() }}
        or (not signals.via_quarantined and naming_an_email.consent_event_id is null)

),

summary as (

    select
        email,
        channel,
        {{ consent_summary_columns() }}
    from reaching
    group by email, channel

),

decided as (

    select
        email,
        channel,
        {{ consent_status_case() }} as status
    from summary

),

-- the signal that decided the status, picked as consent_status picks it
deciding_signal as (

    select
        decided.email,
        decided.channel,
        signals.consent_event_id,
        signals.source,
        signals.occurred_at,
        signals.reason
    from decided
    inner join reaching as signals
        on signals.email = decided.email
        and signals.channel = decided.channel
    where {{ consent_decided_by('decided', 'signals') }}
    qualify row_number() over (
        partition by decided.email, decided.channel
        order by signals.occurred_at desc nulls first, signals.consent_event_id
    ) = 1

)

select
    addresses.email,
    graph_emails.profile_id,
    channels.channel,
    {{ consent_eligibility_columns('decided.status', 'channels.channel') }},
    deciding_signal.source,
    deciding_signal.occurred_at as updated_at,
    deciding_signal.reason,
    deciding_signal.consent_event_id as decided_by
from addresses
cross join channels
left join graph_emails
    on graph_emails.email = addresses.email
left join decided
    on decided.email = addresses.email
    and decided.channel = channels.channel
left join deciding_signal
    on deciding_signal.email = addresses.email
    and deciding_signal.channel = channels.channel
