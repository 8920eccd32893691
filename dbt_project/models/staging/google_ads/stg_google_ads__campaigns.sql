-- Google Ads campaigns, one row per campaign, removed ones included (status REMOVED). Ids as text,
-- like every other ad platform's, so spend models can union them.

{%- set src = source('google_ads', 'campaigns') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'customer_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'advertising_channel_type', dbt.type_string()) }},
        {{ column_or_null(src, 'start_date_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'end_date_time', dbt.type_timestamp()) }}
    from {{ relation_or_empty(src) }}

)

select
    cast(id as {{ dbt.type_string() }}) as campaign_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    name as campaign_name,
    status,
    advertising_channel_type as channel_type,
    start_date_time as starts_at,
    -- Google Ads writes 2037-12-30 for "no end date"
    case when end_date_time < cast('2037-12-30' as date) then end_date_time end as ends_at
from source
