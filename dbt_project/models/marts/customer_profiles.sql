-- One row per profile (a person as identity resolution sees them): who they are, where they are in
-- the funnel, what Salesforce, Stripe and Customer.io know about them, and their consent per
-- channel. Audiences and sync feeds select from here, so a fact is derived once.
--
-- Where a profile has several records in one tool (duplicate leads, two Stripe customers), the one
-- that matters is picked and named in a comment on its CTE; the rest stay reachable through
-- identity_graph.

{%- set channels = var('consent_channels') %}

with

graph as (

    select * from {{ ref('identity_graph') }}

),

profiles as (

    select
        profile_id,
        min(first_seen) as first_seen_at,
        max(last_seen) as last_seen_at,
        count(*) as identifier_count,
        sum(case when identifier_type = 'anonymous_id' then 1 else 0 end) as anonymous_id_count
    from graph
    group by profile_id

),

-- The product user: a profile has at most one user id (identity's invariant); the earliest if not.
users as (

    select
        graph.profile_id,
        graph.identifier as user_id,
        users.email as user_email,
        users.first_name,
        users.last_name,
        users.full_name,
        users.company_name,
        users.phone
    from graph
    left join {{ ref('stg_users') }} as users
        on users.user_id = graph.identifier
    where graph.identifier_type = 'user_id'
    qualify row_number() over (partition by graph.profile_id order by graph.first_seen, graph.identifier) = 1

),

-- Salesforce lead: an open (unconverted) one before a converted one, then the newest.
leads as (

    select
        graph.profile_id,
        leads.*
    from graph
    inner join {{ ref('stg_salesforce__leads') }} as leads
        on leads.lead_id = graph.identifier
    where graph.identifier_type = 'salesforce_lead_id'
    qualify row_number() over (
        partition by graph.profile_id
        order by case when leads.is_converted then 1 else 0 end, leads.created_at desc, leads.lead_id
    ) = 1

),

-- Salesforce contact: the most recently changed one.
contacts as (

    select
        graph.profile_id,
        contacts.*
    from graph
    inner join {{ ref('stg_salesforce__contacts') }} as contacts
        on contacts.contact_id = graph.identifier
    where graph.identifier_type = 'salesforce_contact_id'
    qualify row_number() over (
        partition by graph.profile_id
        order by contacts.system_modified_at desc nulls last, contacts.contact_id
    ) = 1

),

-- Customer.io person: the earliest created (a later duplicate is the one to merge away).
customerio as (

    select
        graph.profile_id,
        people.*
    from graph
    inner join {{ ref('stg_customerio__customers') }} as people
        on people.cio_id = graph.identifier
    where graph.identifier_type = 'customerio_id'
    qualify row_number() over (
        partition by graph.profile_id
        order by people.created_at nulls last, people.cio_id
    ) = 1

),

-- Primary email: the product account's, else the Salesforce contact's, else the one seen last.
primary_email as (

    select
        graph.profile_id,
        graph.identifier as email
    from graph
    left join users on users.profile_id = graph.profile_id
    left join contacts on contacts.profile_id = graph.profile_id
    where graph.identifier_type = 'email'
    qualify row_number() over (
        partition by graph.profile_id
        order by
            case
                when graph.identifier = users.user_email then 0
                when graph.identifier = contacts.email then 1
                else 2
            end,
            graph.last_seen desc,
            graph.identifier
    ) = 1

),

-- Product milestones from the event stream, matched on the user id (server events) or the device;
-- on a shared device (no profile of its own), on the visit it happened in when one person's visit.
milestone_events as (

    select
        coalesce(by_user.profile_id, by_device.profile_id, by_visit.profile_id) as profile_id,
        tracks.event_table,
        tracks.occurred_at
    from {{ ref('stg_tracks') }} as tracks
    left join graph as by_user
        on by_user.identifier_type = 'user_id'
        and by_user.identifier = tracks.user_id
    left join graph as by_device
        on by_device.identifier_type = 'anonymous_id'
        and by_device.identifier = tracks.anonymous_id
    left join {{ ref('identity_device_visits') }} as by_visit
        on by_visit.anonymous_id = tracks.anonymous_id
        and tracks.occurred_at between by_visit.started_at and by_visit.ended_at
        and by_visit.profile_id is not null
    where tracks.event_table in ('signed_up', 'source_created', 'enterprise_quote_requested', 'subscription_started')

),

milestones as (

    select
        profile_id,
        min(case when event_table = 'signed_up' then occurred_at end) as signed_up_at,
        min(case when event_table = 'source_created' then occurred_at end) as first_source_created_at,
        count(case when event_table = 'source_created' then 1 end) as sources_created,
        min(case when event_table = 'enterprise_quote_requested' then occurred_at end) as enterprise_quote_requested_at,
        min(case when event_table = 'subscription_started' then occurred_at end) as first_subscription_started_at
    from milestone_events
    where profile_id is not null
    group by profile_id

),

consent as (

    select
        profile_id
        {%- for channel in channels %},
        max(case when channel = '{{ channel }}' then status end) as {{ channel }}_consent_status,
        max(case when channel = '{{ channel }}' and eligible then 1 else 0 end) = 1 as {{ channel }}_eligible
        {%- endfor %}
    from {{ ref('consent_status') }}
    group by profile_id

),

-- Consent of the primary email address itself (consent_contact_points, reference §4.3 rule 1): the
-- profile can be opted in through an opt-in on another of its addresses while this one still has an
-- opt-out in effect. Email goes to the primary address, so email_eligible needs both.
primary_email_consent as (

    select
        primary_email.profile_id,
        contact_points.status,
        contact_points.eligible
    from primary_email
    inner join {{ ref('consent_contact_points') }} as contact_points
        on contact_points.email = primary_email.email
        and contact_points.channel = 'email'

),

assembled as (

    select
        profiles.profile_id,
        primary_email.email as primary_email,
        users.user_id,
        profiles.anonymous_id_count,
        profiles.identifier_count,
        profiles.first_seen_at,
        profiles.last_seen_at,

        -- latest traits: the product's identify calls first, then the CRM, then Customer.io
        coalesce(users.first_name, contacts.first_name, leads.first_name, customerio.first_name) as first_name,
        coalesce(users.last_name, contacts.last_name, leads.last_name, customerio.last_name) as last_name,
        coalesce(users.company_name, account_status.account_name, leads.company_name, customerio.company_name)
            as company_name,
        coalesce(contacts.title, leads.title, customerio.title) as title,
        coalesce(users.phone, contacts.phone, leads.phone) as phone,
        coalesce(contacts.mailing_country, leads.country, customerio.country) as country,

        -- Salesforce
        leads.lead_id as salesforce_lead_id,
        leads.is_converted as salesforce_lead_is_converted,
        contacts.contact_id as salesforce_contact_id,
        coalesce(contacts.account_id, leads.converted_account_id) as salesforce_account_id,
        account_status.account_type,
        account_status.opportunity_status,
        coalesce(contacts.lifecycle_stage, leads.lifecycle_stage) as salesforce_lifecycle_stage,

        -- Stripe
        billing.stripe_customer_id,
        coalesce(billing.plan, contacts.plan) as plan,
        -- null when the person pays in several currencies (profile_billing never sums across them)
        case when billing.mrr_currency = 'MIXED' then null else coalesce(billing.mrr, 0) end as mrr,
        billing.mrr_currency,
        billing.mrr_by_currency,
        billing.subscription_status,
        coalesce(billing.is_paying, false) as is_paying,

        -- Customer.io: its person ids, and the id a sync addresses the person by (the existing
        -- person's, else the workspace's convention for new people: the user id, else the email)
        customerio.cio_id as customerio_id,
        customerio.customer_id as customerio_customer_id,
        coalesce(customerio.customer_id, users.user_id, primary_email.email) as customerio_identifier,

        -- product milestones (the event stream, else what the CRM recorded)
        coalesce(milestones.signed_up_at, {{ as_timestamptz('leads.signed_up_at') }}) as signed_up_at,
        milestones.first_source_created_at,
        coalesce(milestones.sources_created, 0) as sources_created,
        milestones.enterprise_quote_requested_at,
        -- a customer since: Stripe's first paid subscription, else the event, else the account's date
        coalesce(
            billing.paying_since,
            milestones.first_subscription_started_at,
            {{ as_timestamptz('account_status.customer_since_date') }}
        ) as became_customer_at,
        -- never null: a comparison with a missing value is false here, not unknown
        coalesce(billing.is_paying, false)
            or coalesce(account_status.account_type = 'Customer', false)
            or coalesce(coalesce(contacts.lifecycle_stage, leads.lifecycle_stage) = 'customer', false) as is_customer,
        leads.lead_id is not null or contacts.contact_id is not null as is_in_salesforce

        {%- for channel in channels %},
        coalesce(consent.{{ channel }}_consent_status, 'unknown') as {{ channel }}_consent_status,
        {%- if channel == 'email' %}
        -- the person and the address we would send to: fail closed (false) without a row for it
        coalesce(consent.email_eligible, false)
            and (primary_email.email is null or coalesce(primary_email_consent.eligible, false)) as email_eligible
        {%- else %}
        coalesce(consent.{{ channel }}_eligible, false) as {{ channel }}_eligible
        {%- endif %}
        {%- endfor %},
        primary_email_consent.status as primary_email_consent_status
    from profiles
    left join primary_email on primary_email.profile_id = profiles.profile_id
    left join users on users.profile_id = profiles.profile_id
    left join leads on leads.profile_id = profiles.profile_id
    left join contacts on contacts.profile_id = profiles.profile_id
    left join {{ ref('account_status') }} as account_status
        on account_status.account_id = coalesce(contacts.account_id, leads.converted_account_id)
    left join {{ ref('profile_billing') }} as billing on billing.profile_id = profiles.profile_id
    left join customerio on customerio.profile_id = profiles.profile_id
    left join milestones on milestones.profile_id = profiles.profile_id
    left join consent on consent.profile_id = profiles.profile_id
    left join primary_email_consent on primary_email_consent.profile_id = profiles.profile_id

)

select
    *,
    -- the funnel stage every tool shares: customer > signed_up > lead > visitor
    case
        when is_customer then 'customer'
        when user_id is not null or signed_up_at is not null then 'signed_up'
        when is_in_salesforce or primary_email is not null then 'lead'
        else 'visitor'
    end as lifecycle_stage
from assembled
