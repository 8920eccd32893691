-- One row per identify call, with the commonly used traits cleaned up. Traits are read from
-- `context_traits_*` first and the bare trait columns second (see macros/identify_traits.sql).

{%- set src = source('event_stream', 'identifies') %}

with source as (

    select
        id,
        anonymous_id,
        user_id,
        channel,
        context_source_type,
        context_source_id,
        context_ip,
        timestamp,
        sent_at,
        original_timestamp,
        received_at,
        {{ identify_trait_columns(src) }}
        {{ column_or_null(src, 'context_session_id', dbt.type_bigint()) }},
        uuid_ts
    from {{ src }}

)

select
    {{ clean_string('id') }} as message_id,
    {{ clean_string('anonymous_id') }} as anonymous_id,
    {{ clean_string('user_id') }} as user_id,
    coalesce({{ normalize_email('context_traits_email') }}, {{ normalize_email('email') }}) as email,
    {{ identify_trait('first_name') }} as first_name,
    {{ identify_trait('last_name') }} as last_name,
    {{ identify_trait('name') }} as full_name,
    {{ identify_trait('phone') }} as phone,
    coalesce({{ identify_trait('company_name') }}, {{ identify_trait('company') }}) as company_name,
    lower({{ clean_string('channel') }}) as channel,
    context_source_type as source_type,
    context_source_id as source_id,
    context_ip as ip,
    context_session_id as session_id,
    timestamp as occurred_at,
    sent_at,
    original_timestamp,
    received_at,
    uuid_ts as loaded_at
from source
