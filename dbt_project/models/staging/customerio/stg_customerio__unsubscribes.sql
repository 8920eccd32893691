-- Changes of a person's email subscription in Customer.io, one row per change of the `unsubscribed`
-- attribute: an opt-out (`is_unsubscribed`) or a re-subscription. Consent orders them by `changed_at`.

{%- set src = source('customerio', 'unsubscribes') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'cio_id', dbt.type_string()) }},
        {{ column_or_null(src, 'timestamp', dbt.type_bigint()) }},
        {{ column_or_null(src, 'unsubscribed', dbt.type_boolean()) }},
        {{ column_or_null(src, 'customer_id', dbt.type_string()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'previous', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as activity_id,
    customer_id,
    cio_id,
    {{ normalize_email('email') }} as email,
    unsubscribed as is_unsubscribed,
    {{ clean_string('previous') }} as previous_value,
    {{ epoch_to_timestamp('timestamp') }} as changed_at
from source
