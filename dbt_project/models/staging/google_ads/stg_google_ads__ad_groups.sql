-- Google Ads ad groups, one row per ad group, removed ones included. `cpc_bid` is in the account's
-- currency units.

{%- set src = source('google_ads', 'ad_groups') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'customer_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'cpc_bid_micros', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    cast(id as {{ dbt.type_string() }}) as ad_group_id,
    cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    name as ad_group_name,
    status,
    type as ad_group_type,
    {{ micros_to_units('cpc_bid_micros') }} as cpc_bid
from source
