-- Deleted Salesforce leads and contacts, one row per record: the ones the other staging models drop.
-- Identity needs them (a merge deletes the losing record, `master_record_id` names the survivor) and
-- so does consent (an opt-out recorded on a since-deleted record still counts).

{%- set people = [('lead', source('salesforce', 'lead')), ('contact', source('salesforce', 'contact'))] %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with

{%- for record_type, src in people %}

{{ record_type }}_source as (

    select
        '{{ record_type }}' as record_type,
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'master_record_id', dbt.type_string()) }},
        {{ column_or_null(src, 'email', dbt.type_string()) }},
        {{ column_or_null(src, 'has_opted_out_of_email', dbt.type_boolean()) }},
        {{ column_or_null(src, 'do_not_call', dbt.type_boolean()) }},
        {{ column_or_null(src, 'person_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'product_user_id__c', dbt.type_string()) }},
        {{ column_or_null(src, 'system_modstamp', dbt.type_timestamp()) }}
    from {{ relation_or_empty(src) }}

),
{%- endfor %}

people as (

    select * from lead_source
    union all
    select * from contact_source

)

select
    record_type,
    id as record_id,
    master_record_id,
    {{ normalize_email('email') }} as email,
    has_opted_out_of_email,
    do_not_call,
    {{ clean_string('person_id__c') }} as person_id,
    {{ clean_string('product_user_id__c') }} as product_user_id,
    system_modstamp as deleted_at
from people
where coalesce(is_deleted, false)
