-- Tracked field changes of opportunities (Salesforce `OpportunityFieldHistory`), one row per change.
-- Values are text whatever the field's type; `field_name` is `created` for the opportunity's creation.

{%- set src = source('salesforce', 'opportunity_field_history') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'is_deleted', dbt.type_boolean()) }},
        {{ column_or_null(src, 'opportunity_id', dbt.type_string()) }},
        {{ column_or_null(src, 'field', dbt.type_string()) }},
        {{ column_or_null(src, 'old_value', dbt.type_string()) }},
        {{ column_or_null(src, 'new_value', dbt.type_string()) }},
        {{ column_or_null(src, 'created_by_id', dbt.type_string()) }},
        {{ column_or_null(src, 'created_date', dbt.type_timestamp()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as opportunity_field_history_id,
    opportunity_id,
    field as field_name,
    old_value,
    new_value,
    created_by_id as changed_by_user_id,
    created_date as changed_at
from source
where not coalesce(is_deleted, false)
