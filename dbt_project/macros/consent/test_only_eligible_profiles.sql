{#-
    Generic test `only_eligible_profiles`: fails for every row of a marketing feed whose person may
    not be contacted on `channel`: the profile in `column_name` is not eligible in consent_status
    (opted out, suppressed, erased, or unknown on an opt-in channel), or has no status at all (fail
    closed). With `email_column`, the address itself is checked too: an address that belongs to any
    profile that is not eligible fails, so a feed cannot reach an opted-out person through an email
    taken from another record, and the address must be eligible as a contact point
    (consent_contact_points): an opt-out in effect on that address fails, whatever the profile says.

        data_tests:
          - only_eligible_profiles:
              arguments: {channel: email, email_column: email}
-#}
{% test only_eligible_profiles(model, column_name, channel, email_column=none) %}

with feed as (

    select
        {{ column_name }} as profile_id
        {%- if email_column %},
        {{ email_column }} as email
        {%- endif %}
    from {{ model }}

),

by_profile as (

    select
        feed.profile_id,
        coalesce(consent.status, 'no consent_status row') as status,
        'profile' as checked
    from feed
    left join {{ ref('consent_status') }} as consent
        on consent.profile_id = feed.profile_id
        and consent.channel = '{{ channel }}'
    where consent.eligible is null or not consent.eligible

)

{%- if email_column %},

by_email as (

    select
        feed.profile_id,
        consent.status,
        'email ' || feed.email as checked
    from feed
    inner join {{ ref('identity_graph') }} as graph
        on graph.identifier_type = 'email'
        and graph.identifier = feed.email
    inner join {{ ref('consent_status') }} as consent
        on consent.profile_id = graph.profile_id
        and consent.channel = '{{ channel }}'
    where not consent.eligible

),

-- the address itself (reference §4.3 rule 1): it must be eligible as a contact point; an address
-- without a consent_contact_points row fails too (fail closed)
by_contact_point as (

    select
        feed.profile_id,
        coalesce(contact_point.status, 'no consent_contact_points row') as status,
        'contact point ' || feed.email as checked
    from feed
    left join {{ ref('consent_contact_points') }} as contact_point
        on contact_point.email = feed.email
        and contact_point.channel = '{{ channel }}'
    where feed.email is not null
        and (contact_point.eligible is null or not contact_point.eligible)

)

select * from by_profile
union all
select * from by_email
union all
select * from by_contact_point

{%- else %}

select * from by_profile

{%- endif %}

{% endtest %}
