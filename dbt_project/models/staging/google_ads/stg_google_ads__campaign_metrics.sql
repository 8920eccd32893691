-- Google Ads daily campaign performance, one row per account, campaign and day. `cost` and
-- `conversions_value` are in the account's currency units (`cost_micros / 1e6`, exact).

{%- set src = source('google_ads', 'campaign_metrics') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'customer_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'date', 'date') }},
        {{ column_or_null(src, 'impressions', dbt.type_bigint()) }},
        {{ column_or_null(src, 'clicks', dbt.type_bigint()) }},
        {{ column_or_null(src, 'cost_micros', dbt.type_bigint()) }},
        {{ column_or_null(src, 'conversions', dbt.type_float()) }},
        {{ column_or_null(src, 'conversions_value', dbt.type_float()) }}
    from {{ relation_or_empty(src) }}

)

select
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
    date as report_date,
    impressions,
    clicks,
    {{ micros_to_units('cost_micros') }} as cost,
    conversions,
    conversions_value
from source
