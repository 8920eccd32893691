-- One row per track call, with analytics-friendly names. The event's properties live in its own
-- per-event table (`event_table`); this model keeps what every track call shares.

{%- set src = source('event_stream', 'tracks') %}

with source as (

    select
        id,
        anonymous_id,
        user_id,
        event_text,
        event,
        channel,
        context_source_type,
        context_source_id,
        context_ip,
        timestamp,
        sent_at,
        original_timestamp,
        received_at,
        uuid_ts,
        -- optional: present once some event carried the field
        {{ column_or_null(src, 'context_traits_email', dbt.type_string()) }},
        {{ column_or_null(src, 'context_session_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'context_library_name', dbt.type_string()) }},
        {{ column_or_null(src, 'context_user_agent', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_url', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_path', dbt.type_string()) }}
    from {{ src }}

)

select
    {{ clean_string('id') }} as message_id,
    {{ clean_string('anonymous_id') }} as anonymous_id,
    {{ clean_string('user_id') }} as user_id,
    event_text as event_name,
    event as event_table,
    lower({{ clean_string('channel') }}) as channel,
    context_source_type as source_type,
    context_source_id as source_id,
    context_library_name as library_name,
    {{ normalize_email('context_traits_email') }} as email,
    context_session_id as session_id,
    {{ clean_string('context_page_url') }} as page_url,
    {{ clean_string('context_page_path') }} as page_path,
    context_ip as ip,
    context_user_agent as user_agent,
    timestamp as occurred_at,
    sent_at,
    original_timestamp,
    received_at,
    uuid_ts as loaded_at
from source
