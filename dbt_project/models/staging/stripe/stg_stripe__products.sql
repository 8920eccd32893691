-- Stripe products, one row per product; deleted ones kept (`is_deleted`) because prices and invoice
-- lines still point at them.

{%- set src = source('stripe', 'products') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'active', dbt.type_boolean()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'default_price', dbt.type_string()) }},
        {{ column_or_null(src, 'metadata__plan', dbt.type_string()) }},
        {{ column_or_null(src, 'updated', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as product_id,
    {{ clean_string('name') }} as product_name,
    type as product_type,
    default_price as default_price_id,
    metadata__plan as plan,
    coalesce(active, false) as is_active,
    coalesce(deleted, false) as is_deleted,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at,
    {{ epoch_to_timestamp('updated') }} as updated_at
from source
