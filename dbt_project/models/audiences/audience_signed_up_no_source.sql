-- People who signed up and created no source within the first days (var `audience_no_source_days`,
-- 3 by default): the "connect your first source" nurture. Literal, as the campaign is defined: once
-- the window has passed without a source, the person is in, even if a source comes later.
{%- set days = var('audience_no_source_days') %}
{%- set audience = {
    'description': 'Signed up at least ' ~ days ~ ' days ago and created no source within ' ~ days ~ ' days of signing up.',
    'channel': 'email',
    'destination': 'customerio',
    'membership': {'type': 'attribute', 'attribute': 'audience_signed_up_no_source'},
    'primary_key': 'profile_id',
    'identifier': 'customerio_identifier',
    'schedule': 'daily',
    'columns': ['signed_up_at', 'first_source_created_at'],
} %}
{{ config(meta={'audience': audience}) }}

with members as (

    select
        profile_id,
        -- in the audience from the moment the window closed
        {{ dbt.dateadd('day', days, 'signed_up_at') }} as member_since,
        signed_up_at,
        first_source_created_at
    from {{ ref('customer_profiles') }}
    where signed_up_at is not null
        and {{ dbt.dateadd('day', days, 'signed_up_at') }} <= {{ as_of_timestamp() }}
        and (
            first_source_created_at is null
            or first_source_created_at > {{ dbt.dateadd('day', days, 'signed_up_at') }}
        )

)

{{ audience_select('members', audience) }}
