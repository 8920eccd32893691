-- Stripe prices, one row per price; deleted ones kept (`is_deleted`) because subscriptions still
-- bill them. `unit_amount` is in currency units of `currency` (null for tiered prices).

{%- set src = source('stripe', 'prices') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'active', dbt.type_boolean()) }},
        {{ column_or_null(src, 'currency', dbt.type_string()) }},
        {{ column_or_null(src, 'product', dbt.type_string()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'unit_amount', dbt.type_bigint()) }},
        {{ column_or_null(src, 'billing_scheme', dbt.type_string()) }},
        {{ column_or_null(src, 'recurring__interval', dbt.type_string()) }},
        {{ column_or_null(src, 'recurring__interval_count', dbt.type_bigint()) }},
        {{ column_or_null(src, 'recurring__usage_type', dbt.type_string()) }},
        {{ column_or_null(src, 'lookup_key', dbt.type_string()) }},
        {{ column_or_null(src, 'nickname', dbt.type_string()) }},
        {{ column_or_null(src, 'metadata__plan', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as price_id,
    product as product_id,
    nickname as price_name,
    lookup_key,
    metadata__plan as plan,
    type as price_type,
    billing_scheme,
    upper(currency) as currency,
    {{ stripe_amount('unit_amount', 'currency') }} as unit_amount,
    recurring__interval as billing_interval,
    recurring__interval_count as billing_interval_count,
    recurring__usage_type as usage_type,
    coalesce(active, false) as is_active,
    coalesce(deleted, false) as is_deleted,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at
from source
