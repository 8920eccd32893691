-- Salesforce campaign members that are not deleted: one row per lead or contact in a campaign.

{%- set src = source('salesforce', 'campaign_member') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_string()) }},
        {{ column_or_null(src, 'lead_id', dbt.type_string()) }},
        {{ column_or_null(src, 'contact_id', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'has_responded', dbt.type_boolean()) }},
        {{ column_or_null(src, 'first_responded_date', 'date') }}
    from {{ relation_or_empty(src) }}

)

select
    id as campaign_member_id,
    campaign_id,
    lead_id,
    contact_id,
    {{ normalize_email('email') }} as email,
    status as member_status,
    coalesce(has_responded, false) as has_responded,
    first_responded_date,
    created_date as created_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
