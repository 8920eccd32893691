-- Messages Customer.io sent, one row per message, with the time of each outcome (delivered, opened,
-- clicked, ...; null when it did not happen, or happened after the message was loaded).

{%- set src = source('customerio', 'messages') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'type', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'customer_id', dbt.type_string()) }},
        {{ column_or_null(src, 'customer_identifiers__cio_id', dbt.type_string()) }},
        {{ column_or_null(src, 'customer_identifiers__email', dbt.type_string()) }},
        {{ column_or_null(src, 'recipient', dbt.type_string()) }},
        {{ column_or_null(src, 'subject', dbt.type_string()) }},
        {{ column_or_null(src, 'campaign_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'action_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'broadcast_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'newsletter_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'message_template_id', dbt.type_bigint()) }},
        {{ column_or_null(src, 'forgotten', dbt.type_boolean()) }},
        {{ column_or_null(src, 'metrics__sent', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__delivered', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__opened', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__clicked', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__bounced', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__spammed', dbt.type_bigint()) }},
        {{ column_or_null(src, 'metrics__unsubscribed', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as message_id,
    customer_id,
    customer_identifiers__cio_id as cio_id,
    {{ normalize_email('customer_identifiers__email') }} as email,
    -- the address it went to: an email for email messages (normalised like every email), else as is
    case
        when type = 'email' then {{ normalize_email('recipient') }}
        else {{ clean_string('recipient') }}
    end as recipient,
    type as message_type,
    subject,
    campaign_id,
    action_id,
    broadcast_id,
    newsletter_id,
    message_template_id,
    coalesce(forgotten, false) as is_forgotten,
    {{ epoch_to_timestamp('created') }} as created_at,
    {{ epoch_to_timestamp('metrics__sent') }} as sent_at,
    {{ epoch_to_timestamp('metrics__delivered') }} as delivered_at,
    {{ epoch_to_timestamp('metrics__opened') }} as opened_at,
    {{ epoch_to_timestamp('metrics__clicked') }} as clicked_at,
    {{ epoch_to_timestamp('metrics__bounced') }} as bounced_at,
    {{ epoch_to_timestamp('metrics__spammed') }} as spammed_at,
    {{ epoch_to_timestamp('metrics__unsubscribed') }} as unsubscribed_at
from source
