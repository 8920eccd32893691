-- Stripe customers, one row per customer; deleted ones kept (`is_deleted`) because invoices and
-- charges still point at them. `balance` is in currency units of `currency`.

{%- set src = source('stripe', 'customers') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'currency', dbt.type_string()) }},
        {{ column_or_null(src, 'balance', dbt.type_bigint()) }},
        {{ column_or_null(src, 'delinquent', dbt.type_boolean()) }},
        {{ column_or_null(src, 'tax_exempt', dbt.type_string()) }},
        {{ column_or_null(src, 'metadata__user_id', dbt.type_string()) }},
        {{ column_or_null(src, 'metadata__plan', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as customer_id,
    {{ normalize_email('email') }} as email,
    {{ clean_string('name') }} as customer_name,
    {{ clean_string('metadata__user_id') }} as user_id,
    metadata__plan as plan,
    upper(currency) as currency,
    {{ stripe_amount('balance', 'currency') }} as balance,
    coalesce(delinquent, false) as is_delinquent,
    tax_exempt,
    coalesce(deleted, false) as is_deleted,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at
from source
