-- Billing per profile, from Stripe: one row per profile that has a Stripe customer. Shared by
-- customer_profiles and account_status, so the two never disagree on who pays what.
--
-- MRR counts subscriptions that bill now (`active`, `past_due`): each item's unit price times its
-- quantity, brought to a month (a yearly price / 12, a weekly one * 52 / 12). The profile's plan and
-- status are its leading subscription's: live before ended, the larger MRR first, then the newest.
--
-- Currencies are never added together: a person can pay in two (two Stripe customers, a USD and a
-- EUR subscription), and 100 USD + 100 EUR is no amount at all. `mrr` is the total only when every
-- subscription that bills is in one currency (`mrr_currency`); when they are in several,
-- `mrr_currency` is 'MIXED', `mrr` is null (unknown as one number, not zero) and
-- `mrr_by_currency` lists each currency's total ('EUR 100.00, USD 100.00'). There is no FX rate in
-- the warehouse to convert with.

with

customers as (

    select
        graph.profile_id,
        customers.customer_id,
        customers.plan as signup_plan,
        customers.currency,
        customers.is_deleted,
        customers.created_at
    from {{ ref('stg_stripe__customers') }} as customers
    inner join {{ ref('identity_graph') }} as graph
        on graph.identifier_type = 'stripe_customer_id'
        and graph.identifier = customers.customer_id

),

item_mrr as (

    select
        subscription_id,
        sum(
            unit_amount * coalesce(quantity, 1)
            * case billing_interval
                when 'day' then 365.0 / 12
                when 'week' then 52.0 / 12
                when 'month' then 1.0
                when 'year' then 1.0 / 12
                else 0
            end
            / coalesce(nullif(billing_interval_count, 0), 1)
        ) as monthly_amount,
        max(currency) as currency
    from {{ ref('stg_stripe__subscription_items') }}
    group by subscription_id

),

-- The first invoice that took money, per subscription: proof that it billed.
first_payments as (

    select
        subscription_id,
        min(coalesce(paid_at, finalized_at, created_at)) as first_paid_at
    from {{ ref('stg_stripe__invoices') }}
    where subscription_id is not null
        and amount_paid > 0
    group by subscription_id

),

subscriptions as (

    select
        customers.profile_id,
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.status,
        subscriptions.plan,
        subscriptions.started_at,
        subscriptions.created_at,
        subscriptions.status in ('active', 'past_due') as is_billing,
        -- the subscription's currency (Stripe bills all its items in it), else the customer's
        coalesce(subscriptions.currency, item_mrr.currency, customers.currency) as currency,
        cast(coalesce(item_mrr.monthly_amount, 0) as decimal(18, 2)) as monthly_amount,
        {{ subscription_status_rank('subscriptions.status') }} as status_rank,
        -- When it first billed money; null if it never did. A paid invoice proves it. Without one:
        -- a trial bills nothing (a `trialing` subscription, or one that ended or was canceled by the
        -- end of its trial never billed), nor does an incomplete one or one with no amount; any other
        -- started billing when its trial ended, else when it started.
        coalesce(
            first_payments.first_paid_at,
            case
                when subscriptions.status in ('trialing', 'incomplete', 'incomplete_expired') then null
                when coalesce(item_mrr.monthly_amount, 0) <= 0 then null
                when subscriptions.trial_ends_at is not null
                    and coalesce(subscriptions.ended_at, subscriptions.canceled_at) <= subscriptions.trial_ends_at
                    then null
                else coalesce(subscriptions.trial_ends_at, subscriptions.started_at)
            end
        ) as billed_since
    from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    inner join customers
        on customers.customer_id = subscriptions.customer_id
    left join item_mrr
        on item_mrr.subscription_id = subscriptions.subscription_id
    left join first_payments
        on first_payments.subscription_id = subscriptions.subscription_id

),

leading_subscription as (

    select *
    from subscriptions
    qualify row_number() over (
        partition by profile_id
        order by status_rank, monthly_amount desc, created_at desc, subscription_id
    ) = 1

),

-- MRR per currency: the only sums of money that mean anything
currency_totals as (

    select
        profile_id,
        currency,
        sum(monthly_amount) as mrr
    from subscriptions
    where is_billing and monthly_amount > 0
    group by profile_id, currency

),

currency_summary as (

    select
        profile_id,
        count(*) as currencies,
        min(currency) as only_currency,
        min(mrr) as only_mrr,
        {{ dbt.listagg(
            "coalesce(currency, '?') || ' ' || cast(mrr as " ~ dbt.type_string() ~ ")",
            "', '",
            "order by currency"
        ) }} as mrr_by_currency
    from currency_totals
    group by profile_id

),

totals as (

    select
        profile_id,
        max(case when is_billing and monthly_amount > 0 then 1 else 0 end) = 1 as is_paying,
        -- a customer from the first time a subscription billed money (a trial that never billed
        -- does not make anyone a customer)
        min(billed_since) as paying_since
    from subscriptions
    group by profile_id

),

leading_customer as (

    -- the customer of the leading subscription, else the newest customer not deleted
    select
        customers.*
    from customers
    left join leading_subscription
        on leading_subscription.customer_id = customers.customer_id
    qualify row_number() over (
        partition by customers.profile_id
        order by
            case when leading_subscription.subscription_id is not null then 0 else 1 end,
            case when customers.is_deleted then 1 else 0 end,
            customers.created_at desc,
            customers.customer_id
    ) = 1

)

select
    leading_customer.profile_id,
    leading_customer.customer_id as stripe_customer_id,
    leading_subscription.subscription_id,
    coalesce(leading_subscription.plan, leading_customer.signup_plan) as plan,
    leading_subscription.status as subscription_status,
    -- one currency: its total; several: null, never a sum across currencies (see the header)
    case
        when currency_summary.currencies > 1 then null
        else coalesce(currency_summary.only_mrr, 0)
    end as mrr,
    case
        when currency_summary.currencies > 1 then 'MIXED'
        else coalesce(currency_summary.only_currency, leading_customer.currency)
    end as mrr_currency,
    currency_summary.mrr_by_currency,
    leading_customer.currency,
    coalesce(totals.is_paying, false) as is_paying,
    totals.paying_since
from leading_customer
left join leading_subscription
    on leading_subscription.profile_id = leading_customer.profile_id
left join totals
    on totals.profile_id = leading_customer.profile_id
left join currency_summary
    on currency_summary.profile_id = leading_customer.profile_id
