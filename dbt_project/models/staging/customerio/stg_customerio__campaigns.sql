-- Customer.io campaigns, one row per campaign.

{%- set src = source('customerio', 'campaigns') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'name', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'state', dbt.type_string()) }},
        {{ column_or_null(src, 'active', dbt.type_boolean()) }},
        {{ column_or_null(src, 'event_name', dbt.type_string()) }},
        {{ column_or_null(src, 'created_by', dbt.type_string()) }},
        {{ column_or_null(src, 'updated', dbt.type_bigint()) }},
        {{ column_or_null(src, 'first_started', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as campaign_id,
    name as campaign_name,
    type as trigger_type,
    event_name as trigger_event_name,
    state,
    coalesce(active, false) as is_active,
    created_by,
    {{ epoch_to_timestamp('created') }} as created_at,
    {{ epoch_to_timestamp('updated') }} as updated_at,
    {{ epoch_to_timestamp('first_started') }} as first_started_at
from source
