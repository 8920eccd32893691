-- Customers: people who pay, whose Salesforce account is a customer, or whom sales marked as one.
-- Customer.io uses it to take them out of the nurture campaigns meant for prospects.
{%- set audience = {
    'description': 'Became a customer (paying in Stripe, or a Customer account or contact in Salesforce); leaves the nurture campaigns.',
    'channel': 'email',
    'destination': 'customerio',
    'membership': {'type': 'attribute', 'attribute': 'audience_became_customer'},
    'primary_key': 'profile_id',
    'identifier': 'customerio_identifier',
    'schedule': 'daily',
    'columns': ['became_customer_at', 'plan', 'account_type'],
} %}
{{ config(meta={'audience': audience}) }}

with members as (

    select
        profile_id,
        became_customer_at as member_since,
        became_customer_at,
        plan,
        account_type
    from {{ ref('customer_profiles') }}
    where is_customer

)

{{ audience_select('members', audience) }}
