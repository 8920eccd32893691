-- Stripe subscription items, one row per item: the price a subscription bills and how many. Read from
-- dlt's child table of subscriptions; `unit_amount` is in currency units of `currency`.

{%- set src = dlt_child_table(source('stripe', 'subscriptions'), 'items__data') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'subscription', dbt.type_string()) }},
        {{ column_or_null(src, 'price__id', dbt.type_string()) }},
        {{ column_or_null(src, 'price__product', dbt.type_string()) }},
        {{ column_or_null(src, 'price__currency', dbt.type_string()) }},
        {{ column_or_null(src, 'price__unit_amount', dbt.type_bigint()) }},
        {{ column_or_null(src, 'price__recurring__interval', dbt.type_string()) }},
        {{ column_or_null(src, 'price__recurring__interval_count', dbt.type_bigint()) }},
        {{ column_or_null(src, 'quantity', dbt.type_bigint()) }},
        {{ column_or_null(src, 'current_period_start', dbt.type_bigint()) }},
        {{ column_or_null(src, 'current_period_end', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as subscription_item_id,
    subscription as subscription_id,
    price__id as price_id,
    price__product as product_id,
    quantity,
    upper(price__currency) as currency,
    {{ stripe_amount('price__unit_amount', 'price__currency') }} as unit_amount,
    price__recurring__interval as billing_interval,
    price__recurring__interval_count as billing_interval_count,
    {{ epoch_to_timestamp('current_period_start') }} as current_period_started_at,
    {{ epoch_to_timestamp('current_period_end') }} as current_period_ends_at,
    {{ epoch_to_timestamp('created') }} as created_at
from source
