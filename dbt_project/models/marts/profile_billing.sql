-- Billing per profile, from Stripe: one row per profile that has a Stripe customer. Shared by
-- customer_profiles and account_status, so the two never disagree on who pays what.
--
-- MRR counts subscriptions that bill now (`active`, `past_due`): each item's unit price times its
-- quantity, brought to a month (a yearly price / 12, a weekly one * 52 / 12). The profile's plan and
-- status are its leading subscription's: live before ended, the larger MRR first, then the newest.

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
        ) as monthly_amount
    from {{ ref('stg_stripe__subscription_items') }}
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
        cast(coalesce(item_mrr.monthly_amount, 0) as decimal(18, 2)) as monthly_amount,
        {{ subscription_status_rank('subscriptions.status') }} as status_rank
    from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    inner join customers
        on customers.customer_id = subscriptions.customer_id
    left join item_mrr
        on item_mrr.subscription_id = subscriptions.subscription_id

),

leading_subscription as (

    select *
    from subscriptions
    qualify row_number() over (
        partition by profile_id
        order by status_rank, monthly_amount desc, created_at desc, subscription_id
    ) = 1

),

totals as (

    select
        profile_id,
        sum(case when is_billing then monthly_amount else 0 end) as mrr,
        -- a customer from the first subscription that ever billed money
        min(case when monthly_amount > 0 and status not in ('incomplete', 'incomplete_expired') then started_at end)
            as paying_since
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
    coalesce(totals.mrr, 0) as mrr,
    leading_customer.currency,
    coalesce(totals.mrr, 0) > 0 as is_paying,
    totals.paying_since
from leading_customer
left join leading_subscription
    on leading_subscription.profile_id = leading_customer.profile_id
left join totals
    on totals.profile_id = leading_customer.profile_id
