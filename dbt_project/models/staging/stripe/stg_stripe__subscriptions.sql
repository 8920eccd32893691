-- Stripe subscriptions, one row per subscription, canceled ones included. What each subscription
-- bills (price, quantity) is in stg_stripe__subscription_items.

{%- set src = source('stripe', 'subscriptions') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'customer', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'currency', dbt.type_string()) }},
        {{ column_or_null(src, 'collection_method', dbt.type_string()) }},
        {{ column_or_null(src, 'latest_invoice', dbt.type_string()) }},
        {{ column_or_null(src, 'metadata__plan', dbt.type_string()) }},
        {{ column_or_null(src, 'cancel_at_period_end', dbt.type_boolean()) }},
        {{ column_or_null(src, 'cancellation_details__reason', dbt.type_string()) }},
        {{ column_or_null(src, 'start_date', dbt.type_bigint()) }},
        {{ column_or_null(src, 'billing_cycle_anchor', dbt.type_bigint()) }},
        {{ column_or_null(src, 'trial_start', dbt.type_bigint()) }},
        {{ column_or_null(src, 'trial_end', dbt.type_bigint()) }},
        {{ column_or_null(src, 'cancel_at', dbt.type_bigint()) }},
        {{ column_or_null(src, 'canceled_at', dbt.type_bigint()) }},
        {{ column_or_null(src, 'ended_at', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as subscription_id,
    customer as customer_id,
    status,
    metadata__plan as plan,
    upper(currency) as currency,
    collection_method,
    latest_invoice as latest_invoice_id,
    coalesce(cancel_at_period_end, false) as cancel_at_period_end,
    cancellation_details__reason as cancellation_reason,
    {{ epoch_to_timestamp('start_date') }} as started_at,
    {{ epoch_to_timestamp('billing_cycle_anchor') }} as billing_cycle_anchor_at,
    {{ epoch_to_timestamp('trial_start') }} as trial_started_at,
    {{ epoch_to_timestamp('trial_end') }} as trial_ends_at,
    {{ epoch_to_timestamp('cancel_at') }} as cancel_at,
    {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
    {{ epoch_to_timestamp('ended_at') }} as ended_at,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at
from source
