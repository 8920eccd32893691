-- Account fields that come from billing: one row per Salesforce account with a Stripe customer
-- among its people and a live plan or a paid subscription. Type is only ever raised to `Customer` (null is not sent): sales owns the
-- field and may have reasons to keep a non-paying account a customer. MRR and the Stripe status are
-- in account_status; the org has no fields for them yet (add `MRR__c` / `Stripe_Status__c` to the
-- org, then to this model and its mapping).

with billing as (

    select
        account_id as id,
        -- the plan of the account's leading live subscription
        case when stripe_status in ('active', 'past_due', 'trialing') then stripe_plan end as plan,
        case when is_paying then cast(paying_since as date) end as customer_since,
        case when is_paying then 'Customer' end as account_type
    from {{ ref('account_status') }}
    where stripe_customer_count > 0

)

-- Only accounts with something to say: nulls are not sent, so an all-null row would be an empty update.
select *
from billing
where plan is not null or customer_since is not null or account_type is not null
