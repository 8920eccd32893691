-- Salesforce opportunities (deals) that are not deleted, one row per opportunity. `amount` is in
-- currency units of `currency` (the record's currency in a multi-currency org, else null: the org's).

{%- set src = source('salesforce', 'opportunity') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'stage_name', dbt.type_string()) }},
        {{ column_or_null(src, 'amount', dbt.type_numeric()) }},
        {{ column_or_null(src, 'close_date', 'date') }},
        {{ column_or_null(src, 'is_closed', dbt.type_boolean()) }},
        {{ column_or_null(src, 'is_won', dbt.type_boolean()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'last_modified_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'currency_iso_code', dbt.type_string()) }},
        {{ column_or_null(src, 'probability', dbt.type_float()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'lead_source', dbt.type_string()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_string()) }},
        {{ column_or_null(src, 'owner_id', dbt.type_string()) }},
        {{ column_or_null(src, 'plan__c', dbt.type_string()) }},
        {{ column_or_null(src, 'seats__c', dbt.type_float()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as opportunity_id,
    account_id,
    campaign_id,
    owner_id,
    {{ clean_string('name') }} as opportunity_name,
    stage_name,
    type as opportunity_type,
    lead_source,
    amount,
    upper(currency_iso_code) as currency,
    probability as probability_percent,
    close_date,
    coalesce(is_closed, false) as is_closed,
    coalesce(is_won, false) as is_won,
    plan__c as plan,
    seats__c as seats,
    created_date as created_at,
    last_modified_date as last_modified_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
