-- One row per user id. The loader's `users` table already holds, per column, the latest non-null
-- value from the user's identify calls; this model renames and cleans it. Ids that are blank after
-- trimming are dropped, and ids that collide once trimmed keep the most recently identified row.

{%- set src = source('event_stream', 'users') %}

with source as (

    select
        id,
        anonymous_id,
        context_source_type,
        timestamp,
        received_at,
        {{ identify_trait_columns(src) }}
        uuid_ts
    from {{ src }}

),

cleaned as (

    select
        {{ clean_string('id') }} as user_id,
        {{ clean_string('anonymous_id') }} as latest_anonymous_id,
        coalesce({{ normalize_email('context_traits_email') }}, {{ normalize_email('email') }}) as email,
        {{ identify_trait('first_name') }} as first_name,
        {{ identify_trait('last_name') }} as last_name,
        {{ identify_trait('name') }} as full_name,
        {{ identify_trait('phone') }} as phone,
        coalesce({{ identify_trait('company_name') }}, {{ identify_trait('company') }}) as company_name,
        context_source_type as source_type,
        timestamp as last_identified_at,
        received_at as last_received_at,
        uuid_ts as loaded_at
    from source

)

select *
from cleaned
where user_id is not null
qualify row_number() over (
    partition by user_id
    order by last_received_at desc nulls last, loaded_at desc nulls last
) = 1
