-- Salesforce campaigns that are not deleted, one row per campaign. `budgeted_cost` is in the org's
-- currency units.

{%- set src = source('salesforce', 'campaign') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'start_date', 'date') }},
        {{ column_or_null(src, 'end_date', 'date') }},
        {{ column_or_null(src, 'is_active', dbt.type_boolean()) }},
        {{ column_or_null(src, 'budgeted_cost', dbt.type_numeric()) }},
        {{ column_or_null(src, 'owner_id', dbt.type_string()) }},
        {{ column_or_null(src, 'channel__c', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as campaign_id,
    {{ clean_string('name') }} as campaign_name,
    type as campaign_type,
    status as campaign_status,
    channel__c as channel,
    start_date,
    end_date,
    is_active,
    budgeted_cost,
    owner_id,
    created_date as created_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
