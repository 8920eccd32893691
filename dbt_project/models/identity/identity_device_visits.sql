-- Visits to shared devices, and whose they are (reference §3.4 step 5: "an anonymous_id linked to two
-- users is assigned by time window to whoever was logged in, not merged").
--
-- A device in identity_quarantine (an anonymous_id linked to more user ids than its cap, or another
-- hub) names nobody in particular, so identity_graph gives it no profile. Its events are cut into
-- visits: a visit ends after var('identity_visit_gap_minutes') without an event, or where the SDK's
-- session id changes (context.sessionId, a new session on the same browser). A visit in which exactly
-- one valid user id was seen is that user's: its anonymous events (the browsing before the login, a
-- form sent after the session token lapsed) are attributed to the user's profile. A visit with no
-- login, or with two people's logins, belongs to no one, and says why in `unattributed_reason`.
--
-- What uses it: product milestones in customer_profiles. Consent does not: an opt-in is taken only
-- from an identifier the signal itself names (attribution by time is a guess, and a guess may never
-- give consent), while an opt-out on a shared device already reaches every profile the device was
-- seen with (consent_profile_signals).

{%- set gap_seconds = var('identity_visit_gap_minutes') * 60 %}

with

devices as (

    select distinct identifier as anonymous_id
    from {{ ref('identity_quarantine') }}
    where identifier_type = 'anonymous_id'

),

-- Every event on a shared device. The staging models' ids are cleaned the way identity normalises
-- an id, so they compare equal to identity's identifiers as they are.
events as (

    {%- for model in ['stg_identifies', 'stg_tracks', 'stg_pages'] %}
    select
        events.anonymous_id,
        events.message_id,
        events.occurred_at,
        events.session_id,
        case
            when {{ identity_reject_reason("'user_id'", 'events.user_id') }} is null then events.user_id
        end as user_id
    from {{ ref(model) }} as events
    inner join devices
        on devices.anonymous_id = events.anonymous_id
    where events.occurred_at is not null
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

ordered as (

    select
        *,
        lag(occurred_at) over (partition by anonymous_id order by occurred_at, message_id) as previous_at,
        lag(session_id) over (partition by anonymous_id order by occurred_at, message_id) as previous_session_id
    from events

),

-- A session change starts a visit only when time has moved on: two events of one instant are always
-- in one visit, so every instant of a device belongs to exactly one visit (downstream joins on time).
marked as (

    select
        *,
        case
            when previous_at is null then 1
            when {{ dbt.datediff('previous_at', 'occurred_at', 'second') }} > {{ gap_seconds }} then 1
            when session_id <> previous_session_id and occurred_at > previous_at then 1
            else 0
        end as starts_visit
    from ordered

),

numbered as (

    select
        *,
        sum(starts_visit) over (
            partition by anonymous_id order by occurred_at, message_id
            rows between unbounded preceding and current row
        ) as visit_number
    from marked

),

visits as (

    select
        anonymous_id,
        visit_number,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        sum(case when user_id is null then 1 else 0 end) as anonymous_events,
        count(distinct user_id) as user_ids,
        min(user_id) as user_id
    from numbered
    group by anonymous_id, visit_number

)

select
    visits.anonymous_id,
    visits.visit_number,
    visits.started_at,
    visits.ended_at,
    visits.events,
    visits.anonymous_events,
    visits.user_ids,
    case when visits.user_ids = 1 then visits.user_id end as user_id,
    case when visits.user_ids = 1 then graph.profile_id end as profile_id,
    case
        when visits.user_ids = 0 then 'no_login'
        when visits.user_ids > 1 then 'several_users'
        -- the one user id is itself quarantined (a QA account shared by many): nobody in particular
        when graph.profile_id is null then 'user_not_stitched'
    end as unattributed_reason
from visits
left join {{ ref('identity_graph') }} as graph
    on graph.identifier_type = 'user_id'
    and graph.identifier = visits.user_id
