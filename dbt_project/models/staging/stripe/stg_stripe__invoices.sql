-- Stripe invoices, one row per invoice. Amounts are in currency units of `currency` (dollars, not
-- cents).

{%- set src = source('stripe', 'invoices') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'customer', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'currency', dbt.type_string()) }},
        {{ column_or_null(src, 'amount_due', dbt.type_bigint()) }},
        {{ column_or_null(src, 'amount_paid', dbt.type_bigint()) }},
        {{ column_or_null(src, 'amount_remaining', dbt.type_bigint()) }},
        {{ column_or_null(src, 'subtotal', dbt.type_bigint()) }},
        {{ column_or_null(src, 'total', dbt.type_bigint()) }},
        {{ column_or_null(src, 'number', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_reason', dbt.type_string()) }},
        {{ column_or_null(src, 'collection_method', dbt.type_string()) }},
        {{ column_or_null(src, 'customer_email', dbt.type_string()) }},
        {{ column_or_null(src, 'attempt_count', dbt.type_bigint()) }},
        -- the subscription: `parent.subscription_details` since API 2025-03-31, `subscription` before
        {{ column_or_null(src, 'parent__subscription_details__subscription', dbt.type_string()) }},
        {{ column_or_null(src, 'subscription', dbt.type_string()) }},
        {{ column_or_null(src, 'period_start', dbt.type_bigint()) }},
        {{ column_or_null(src, 'period_end', dbt.type_bigint()) }},
        {{ column_or_null(src, 'status_transitions__finalized_at', dbt.type_bigint()) }},
        {{ column_or_null(src, 'status_transitions__paid_at', dbt.type_bigint()) }},
        {{ column_or_null(src, 'status_transitions__voided_at', dbt.type_bigint()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as invoice_id,
    customer as customer_id,
    coalesce(parent__subscription_details__subscription, subscription) as subscription_id,
    number as invoice_number,
    status,
    billing_reason,
    collection_method,
    {{ normalize_email('customer_email') }} as customer_email,
    upper(currency) as currency,
    {{ stripe_amount('amount_due', 'currency') }} as amount_due,
    {{ stripe_amount('amount_paid', 'currency') }} as amount_paid,
    {{ stripe_amount('amount_remaining', 'currency') }} as amount_remaining,
    {{ stripe_amount('subtotal', 'currency') }} as subtotal,
    {{ stripe_amount('total', 'currency') }} as total,
    attempt_count,
    {{ epoch_to_timestamp('period_start') }} as period_started_at,
    {{ epoch_to_timestamp('period_end') }} as period_ended_at,
    {{ epoch_to_timestamp('status_transitions__finalized_at') }} as finalized_at,
    {{ epoch_to_timestamp('status_transitions__paid_at') }} as paid_at,
    {{ epoch_to_timestamp('status_transitions__voided_at') }} as voided_at,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at
from source
