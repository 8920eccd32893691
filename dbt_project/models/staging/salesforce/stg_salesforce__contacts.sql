-- Salesforce contacts that are not deleted, one row per contact. Deleted contacts (recycle bin,
-- merged away) are in stg_salesforce__deleted_people.

{%- set src = source('salesforce', 'contact') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'account_id', dbt.type_string()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'first_name', dbt.type_string()) }},
        {{ column_or_null(src, 'last_name', dbt.type_string()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'last_modified_date', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }},
        {{ column_or_null(src, 'title', dbt.type_string()) }},
        {{ column_or_null(src, 'phone', dbt.type_string()) }},
        {{ column_or_null(src, 'lead_source', dbt.type_string()) }},
        {{ column_or_null(src, 'owner_id', dbt.type_string()) }},
        {{ column_or_null(src, 'has_opted_out_of_email', dbt.type_boolean()) }},
        {{ column_or_null(src, 'do_not_call', dbt.type_boolean()) }},
        {{ column_or_null(src, 'mailing_country', dbt.type_string()) }},
        {{ column_or_null(src, 'mailing_state', dbt.type_string()) }},
        {{ column_or_null(src, 'mailing_city', dbt.type_string()) }},
        {{ column_or_null(src, 'mailing_postal_code', dbt.type_string()) }},
        {{ column_or_null(src, 'person_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'product_user_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'lifecycle_stage__c', dbt.type_string()) }},
        {{ column_or_null(src, 'plan__c', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as contact_id,
    account_id,
    {{ normalize_email('email') }} as email,
    {{ clean_string('first_name') }} as first_name,
    {{ clean_string('last_name') }} as last_name,
    {{ clean_string('title') }} as title,
    {{ clean_string('phone') }} as phone,
    lead_source,
    owner_id,
    has_opted_out_of_email,
    do_not_call,
    mailing_country,
    mailing_state,
    mailing_city,
    mailing_postal_code,
    {{ clean_string('person_id__c') }} as person_id,
    {{ clean_string('product_user_id__c') }} as product_user_id,
    lifecycle_stage__c as lifecycle_stage,
    plan__c as plan,
    created_date as created_at,
    last_modified_date as last_modified_at,
    system_modstamp as system_modified_at
from source
where not coalesce(is_deleted, false)
