-- People who asked sales for an enterprise quote: the follow-up campaign, and the manual
-- "Enterprise prospects" segment sales works from.
{%- set audience = {
    'description': 'Requested an enterprise quote (event enterprise_quote_requested).',
    'channel': 'email',
    'destination': 'customerio',
    'membership': {'type': 'manual_segment', 'segment_id': 6},
    'primary_key': 'profile_id',
    'identifier': 'customerio_identifier',
    'schedule': 'on_demand',
    'columns': ['enterprise_quote_requested_at', 'plan'],
} %}
{{ config(meta={'audience': audience}) }}

with members as (

    select
        profile_id,
        enterprise_quote_requested_at as member_since,
        enterprise_quote_requested_at,
        plan
    from {{ ref('customer_profiles') }}
    where enterprise_quote_requested_at is not null

)

{{ audience_select('members', audience) }}
