-- One row per page view. Page fields come from the call's properties (bare columns such as `url`),
-- falling back to the SDK's `context.page`; UTM parameters come from `context.campaign`.

{%- set src = source('event_stream', 'pages') %}

with source as (

    select
        id,
        anonymous_id,
        user_id,
        name,
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
        {{ column_or_null(src, 'url', dbt.type_string()) }},
        {{ column_or_null(src, 'path', dbt.type_string()) }},
        {{ column_or_null(src, 'title', dbt.type_string()) }},
        {{ column_or_null(src, 'referrer', dbt.type_string()) }},
        {{ column_or_null(src, 'search', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_url', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_path', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_title', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_referrer', dbt.type_string()) }},
        {{ column_or_null(src, 'context_page_search', dbt.type_string()) }},
        {{ column_or_null(src, 'context_campaign_source', dbt.type_string()) }},
        {{ column_or_null(src, 'context_campaign_medium', dbt.type_string()) }},
        {{ column_or_null(src, 'context_campaign_name', dbt.type_string()) }},
        {{ column_or_null(src, 'context_campaign_term', dbt.type_string()) }},
        {{ column_or_null(src, 'context_campaign_content', dbt.type_string()) }},
        {{ column_or_null(src, 'context_traits_email', dbt.type_string()) }},
        {{ column_or_null(src, 'context_session_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'context_user_agent', dbt.type_string()) }}
    from {{ src }}

)

select
    {{ clean_string('id') }} as message_id,
    {{ clean_string('anonymous_id') }} as anonymous_id,
    {{ clean_string('user_id') }} as user_id,
    {{ clean_string('name') }} as page_name,
    coalesce({{ clean_string('url') }}, {{ clean_string('context_page_url') }}) as url,
    coalesce({{ clean_string('path') }}, {{ clean_string('context_page_path') }}) as path,
    coalesce({{ clean_string('title') }}, {{ clean_string('context_page_title') }}) as title,
    coalesce({{ clean_string('referrer') }}, {{ clean_string('context_page_referrer') }}) as referrer,
    coalesce({{ clean_string('search') }}, {{ clean_string('context_page_search') }}) as search,
    {{ clean_string('context_campaign_source') }} as utm_source,
    {{ clean_string('context_campaign_medium') }} as utm_medium,
    {{ clean_string('context_campaign_name') }} as utm_campaign,
    {{ clean_string('context_campaign_term') }} as utm_term,
    {{ clean_string('context_campaign_content') }} as utm_content,
    lower({{ clean_string('channel') }}) as channel,
    context_source_type as source_type,
    context_source_id as source_id,
    {{ normalize_email('context_traits_email') }} as email,
    context_session_id as session_id,
    context_ip as ip,
    context_user_agent as user_agent,
    timestamp as occurred_at,
    sent_at,
    original_timestamp,
    received_at,
    uuid_ts as loaded_at
from source
