-- Salesforce accounts (companies) that are not deleted, one row per account.

{%- set src = source('salesforce', 'account') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'last_modified_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'website', dbt.type_string()) }},
        {{ column_or_null(src, 'industry', dbt.type_string()) }},
        {{ column_or_null(src, 'number_of_employees', dbt.type_bigint()) }},
        {{ column_or_null(src, 'phone', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_country', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_state', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_city', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_postal_code', dbt.type_string()) }},
        {{ column_or_null(src, 'owner_id', dbt.type_string()) }},
        {{ column_or_null(src, 'domain__c', dbt.type_string()) }},
        {{ column_or_null(src, 'plan__c', dbt.type_string()) }},
        {{ column_or_null(src, 'customer_since__c', 'date') }}
    from {{ relation_or_empty(src) }}

)

select
    id as account_id,
    {{ clean_string('name') }} as account_name,
    type as account_type,
    {{ clean_string('website') }} as website,
    lower({{ clean_string('domain__c') }}) as domain,
    industry,
    number_of_employees,
    {{ clean_string('phone') }} as phone,
    billing_country,
    billing_state,
    billing_city,
    billing_postal_code,
    owner_id,
    plan__c as plan,
    customer_since__c as customer_since_date,
    created_date as created_at,
    last_modified_date as last_modified_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
