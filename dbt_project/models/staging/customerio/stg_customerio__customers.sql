-- Customer.io people, one row per person. Attributes are workspace-specific: the ones read here may
-- be absent (null). `is_unsubscribed` is the current email subscription state; its history is
-- stg_customerio__unsubscribes.

{%- set src = source('customerio', 'customers') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'cio_id', dbt.type_string()) }},
        {{ column_or_null(src, '_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'unsubscribed', dbt.type_boolean()) }},
        {{ column_or_null(src, 'unsubscribed_at', dbt.type_bigint()) }},
        {{ column_or_null(src, 'attributes__email', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__first_name', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__last_name', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__company', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__title', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__country', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__lifecycle_stage', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__plan', dbt.type_string()) }},
        {{ column_or_null(src, 'attributes__created_at', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as customer_id,
    cio_id,
    coalesce({{ normalize_email('email') }}, {{ normalize_email('attributes__email') }}) as email,
    {{ clean_string('attributes__first_name') }} as first_name,
    {{ clean_string('attributes__last_name') }} as last_name,
    {{ clean_string('attributes__company') }} as company_name,
    {{ clean_string('attributes__title') }} as title,
    attributes__country as country,
    attributes__lifecycle_stage as lifecycle_stage,
    attributes__plan as plan,
    unsubscribed as is_unsubscribed,
    {{ epoch_to_timestamp('unsubscribed_at') }} as unsubscribed_at,
    -- `created_at` is the attribute our identify calls set, in Unix seconds
    {{ epoch_to_timestamp(dbt.safe_cast('attributes__created_at', dbt.type_bigint())) }} as created_at
from source
where not coalesce(_deleted, false)
