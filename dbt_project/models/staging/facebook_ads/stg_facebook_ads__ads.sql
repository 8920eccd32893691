-- Facebook Ads ads, one row per ad, deleted and archived ones included (see `status`).

{%- set src = source('facebook_ads', 'ads') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_string()) }},
        {{ column_or_null(src, 'adset_id', dbt.type_string()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'effective_status', dbt.type_string()) }},
        {{ column_or_null(src, 'created_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'updated_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'creative_id', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as ad_id,
    adset_id,
    campaign_id,
    account_id,
    name as ad_name,
    status,
    effective_status,
    creative_id,
    created_time as created_at,
    updated_time as updated_at
from source
