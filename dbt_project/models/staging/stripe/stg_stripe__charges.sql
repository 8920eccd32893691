-- Stripe charges (payment attempts), one row per charge, failed ones included. Amounts are in
-- currency units of `currency` (dollars, not cents).

{%- set src = source('stripe', 'charges') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with source as (

    select
        {{ column_or_null(src, 'id', dbt.type_string()) }},
        {{ column_or_null(src, 'created', dbt.type_bigint()) }},
        {{ column_or_null(src, 'livemode', dbt.type_boolean()) }},
        {{ column_or_null(src, 'amount', dbt.type_bigint()) }},
        {{ column_or_null(src, 'amount_refunded', dbt.type_bigint()) }},
        {{ column_or_null(src, 'currency', dbt.type_string()) }},
        {{ column_or_null(src, 'status', dbt.type_string()) }},
        {{ column_or_null(src, 'paid', dbt.type_boolean()) }},
        {{ column_or_null(src, 'refunded', dbt.type_boolean()) }},
        {{ column_or_null(src, 'customer', dbt.type_string()) }},
        {{ column_or_null(src, 'invoice', dbt.type_string()) }},
        {{ column_or_null(src, 'payment_intent', dbt.type_string()) }},
        {{ column_or_null(src, 'amount_captured', dbt.type_bigint()) }},
        {{ column_or_null(src, 'captured', dbt.type_boolean()) }},
        {{ column_or_null(src, 'disputed', dbt.type_boolean()) }},
        {{ column_or_null(src, 'description', dbt.type_string()) }},
        {{ column_or_null(src, 'failure_code', dbt.type_string()) }},
        {{ column_or_null(src, 'failure_message', dbt.type_string()) }},
        {{ column_or_null(src, 'outcome__type', dbt.type_string()) }},
        {{ column_or_null(src, 'outcome__risk_level', dbt.type_string()) }},
        {{ column_or_null(src, 'receipt_email', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_details__email', dbt.type_string()) }},
        {{ column_or_null(src, 'billing_details__name', dbt.type_string()) }}
    from {{ relation_or_empty(src) }}

)

select
    id as charge_id,
    customer as customer_id,
    invoice as invoice_id,
    payment_intent as payment_intent_id,
    status,
    upper(currency) as currency,
    {{ stripe_amount('amount', 'currency') }} as amount,
    {{ stripe_amount('amount_captured', 'currency') }} as amount_captured,
    {{ stripe_amount('amount_refunded', 'currency') }} as amount_refunded,
    coalesce(paid, false) as is_paid,
    coalesce(captured, false) as is_captured,
    coalesce(refunded, false) as is_refunded,
    coalesce(disputed, false) as is_disputed,
    failure_code,
    failure_message,
    outcome__type as outcome_type,
    outcome__risk_level as risk_level,
    {{ normalize_email('receipt_email') }} as receipt_email,
    {{ normalize_email('billing_details__email') }} as billing_email,
    {{ clean_string('billing_details__name') }} as billing_name,
    description,
    livemode as is_livemode,
    {{ epoch_to_timestamp('created') }} as created_at
from source
