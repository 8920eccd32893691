-- SMS opt-outs in Customer.io (a STOP reply), one row per person, channel and sender number.

{%- set src = source('customerio', 'optouts') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'cio_id', dbt.type_string()) }},
        {{ column_or_null(src, 'channel', dbt.type_string()) }},
        {{ column_or_null(src, 'customer_id', dbt.type_string()) }},
        {{ column_or_null(src, 'from', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    customer_id,
    cio_id,
    channel,
    {{ adapter.quote('from') }} as sender
from source
