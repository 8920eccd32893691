-- Salesforce users (record owners, the integration user), one row per user. Users are deactivated,
-- never deleted: `is_active` says which still sign in.

{%- set src = source('salesforce', 'user') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'username', dbt.type_string()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'is_active', dbt.type_boolean()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'first_name', dbt.type_string()) }},
        {{ column_or_null(src, 'last_name', dbt.type_string()) }},
        {{ column_or_null(src, 'title', dbt.type_string()) }},
        {{ column_or_null(src, 'department', dbt.type_string()) }},
        {{ column_or_null(src, 'user_type', dbt.type_string()) }},
        {{ column_or_null(src, 'sales_region__c', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as user_id,
    username,
    {{ normalize_email('email') }} as email,
    {{ clean_string('name') }} as full_name,
    {{ clean_string('first_name') }} as first_name,
    {{ clean_string('last_name') }} as last_name,
    title,
    department,
    user_type,
    sales_region__c as sales_region,
    coalesce(is_active, false) as is_active,
    created_date as created_at,
    system_modstamp as system_modified_at
from source
