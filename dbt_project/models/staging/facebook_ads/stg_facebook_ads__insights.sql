-- Facebook Ads daily performance, one row per ad and day. `spend` is in the ad account's currency
-- units; the actions (link clicks, leads, ...) are in stg_facebook_ads__insight_actions.

{%- set src = source('facebook_ads', 'insights') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'ad_id', dbt.type_string()) }},
        {{ column_or_null(src, 'date_start', 'date') }},
        {{ column_or_null(src, 'account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_string()) }},
        {{ column_or_null(src, 'adset_id', dbt.type_string()) }},
        {{ column_or_null(src, 'impressions', dbt.type_bigint()) }},
        {{ column_or_null(src, 'clicks', dbt.type_bigint()) }},
        {{ column_or_null(src, 'spend', dbt.type_numeric()) }},
        {{ column_or_null(src, 'reach', dbt.type_bigint()) }},
        {{ column_or_null(src, 'campaign_name', dbt.type_string()) }},
        {{ column_or_null(src, 'adset_name', dbt.type_string()) }},
        {{ column_or_null(src, 'ad_name', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    ad_id,
    date_start as report_date,
    adset_id,
    campaign_id,
    account_id,
    ad_name,
    adset_name,
    campaign_name,
    impressions,
    reach,
    clicks,
    cast(spend as decimal(18, 2)) as spend
from source
