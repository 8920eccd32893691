-- Facebook Ads ad sets, one row per ad set, deleted and archived ones included (see `status`).
-- Budgets are in the account currency's units, assuming a two-decimal currency (Graph gives cents).

{%- set src = source('facebook_ads', 'adsets') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_string()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'effective_status', dbt.type_string()) }},
        {{ column_or_null(src, 'created_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'updated_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'optimization_goal', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_event', dbt.type_string()) }},
        {{ column_or_null(src, 'daily_budget', dbt.type_bigint()) }},
        {{ column_or_null(src, 'lifetime_budget', dbt.type_bigint()) }},
        {{ column_or_null(src, 'start_time', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'end_time', dbt.type_timestamp()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as adset_id,
    campaign_id,
    account_id,
    name as adset_name,
    status,
    effective_status,
    optimization_goal,
    billing_event,
    cast(daily_budget * 0.01 as decimal(18, 2)) as daily_budget,
    cast(lifetime_budget * 0.01 as decimal(18, 2)) as lifetime_budget,
    start_time as starts_at,
    end_time as ends_at,
    created_time as created_at,
    updated_time as updated_at
from source
