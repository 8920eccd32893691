-- Addresses the email provider will not deliver to, one row per list and address: hard bounces,
-- blocks, spam reports and invalid addresses. The lists are read whole each run.

{%- set src = source('customerio', 'suppressions') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'reason', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    type as suppression_type,
    {{ normalize_email('email') }} as email,
    reason,
    status as smtp_status,
    {{ epoch_to_timestamp('created') }} as suppressed_at
from source
