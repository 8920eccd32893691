-- Salesforce leads that are not deleted, one row per lead; converted leads stay, flagged. Deleted
-- leads (recycle bin, merged away) are in stg_salesforce__deleted_people.

{%- set src = source('salesforce', 'lead') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'first_name', dbt.type_string()) }},
        {{ column_or_null(src, 'last_name', dbt.type_string()) }},
        {{ column_or_null(src, 'company', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'is_converted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'last_modified_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'title', dbt.type_string()) }},
        {{ column_or_null(src, 'phone', dbt.type_string()) }},
        {{ column_or_null(src, 'website', dbt.type_string()) }},
        {{ column_or_null(src, 'industry', dbt.type_string()) }},
        {{ column_or_null(src, 'number_of_employees', dbt.type_bigint()) }},
        {{ column_or_null(src, 'country', dbt.type_string()) }},
        {{ column_or_null(src, 'state', dbt.type_string()) }},
        {{ column_or_null(src, 'city', dbt.type_string()) }},
        {{ column_or_null(src, 'postal_code', dbt.type_string()) }},
        {{ column_or_null(src, 'lead_source', dbt.type_string()) }},
        {{ column_or_null(src, 'rating', dbt.type_string()) }},
        {{ column_or_null(src, 'owner_id', dbt.type_string()) }},
        {{ column_or_null(src, 'has_opted_out_of_email', dbt.type_boolean()) }},
        {{ column_or_null(src, 'do_not_call', dbt.type_boolean()) }},
        {{ column_or_null(src, 'converted_date', 'date') }},
        {{ column_or_null(src, 'converted_account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'converted_contact_id', dbt.type_string()) }},
        {{ column_or_null(src, 'converted_opportunity_id', dbt.type_string()) }},
        {{ column_or_null(src, 'person_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'product_user_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'lifecycle_stage__c', dbt.type_string()) }},
        {{ column_or_null(src, 'signed_up_at__c', dbt.type_timestamp()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as lead_id,
    {{ normalize_email('email') }} as email,
    {{ clean_string('first_name') }} as first_name,
    {{ clean_string('last_name') }} as last_name,
    {{ clean_string('title') }} as title,
    {{ clean_string('phone') }} as phone,
    {{ clean_string('company') }} as company_name,
    {{ clean_string('website') }} as website,
    industry,
    number_of_employees,
    country,
    state,
    city,
    postal_code,
    status as lead_status,
    lead_source,
    rating,
    owner_id,
    has_opted_out_of_email,
    do_not_call,
    coalesce(is_converted, false) as is_converted,
    converted_date,
    converted_account_id,
    converted_contact_id,
    converted_opportunity_id,
    {{ clean_string('person_id__c') }} as person_id,
    {{ clean_string('product_user_id__c') }} as product_user_id,
    lifecycle_stage__c as lifecycle_stage,
    signed_up_at__c as signed_up_at,
    created_date as created_at,
    last_modified_date as last_modified_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
