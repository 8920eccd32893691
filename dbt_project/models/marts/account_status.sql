-- One row per Salesforce account (not deleted): its type as sales set it, its deals, and what Stripe
-- says about the people at it. The people are the account's contacts and the leads converted into
-- it, each resolved to a profile, so a user who pays in Stripe counts for their company's account.

with

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

deal_totals as (

    select
        account_id,
        count(*) as opportunity_count,
        sum(case when not is_closed then 1 else 0 end) as open_opportunity_count,
        sum(case when not is_closed then amount else 0 end) as open_pipeline_amount,
        sum(case when is_won then 1 else 0 end) as won_opportunity_count,
        sum(case when is_won then amount else 0 end) as won_amount,
        sum(case when is_closed and not is_won then 1 else 0 end) as lost_opportunity_count,
        max(case when is_won then close_date end) as last_won_date
    from opportunities
    where account_id is not null
    group by account_id

),

-- The account's latest deal says where sales stands with it.
latest_deal as (

    select
        account_id,
        stage_name as latest_opportunity_stage,
        case when is_won then 'won' when is_closed then 'lost' else 'open' end as opportunity_status
    from opportunities
    where account_id is not null
    qualify row_number() over (partition by account_id order by created_at desc, opportunity_id desc) = 1

),

account_people as (

    select distinct
        contacts.account_id,
        graph.profile_id
    from {{ ref('stg_salesforce__contacts') }} as contacts
    inner join {{ ref('identity_graph') }} as graph
        on graph.identifier_type = 'salesforce_contact_id'
        and graph.identifier = contacts.contact_id
    where contacts.account_id is not null

    union

    select distinct
        leads.converted_account_id as account_id,
        graph.profile_id
    from {{ ref('stg_salesforce__leads') }} as leads
    inner join {{ ref('identity_graph') }} as graph
        on graph.identifier_type = 'salesforce_lead_id'
        and graph.identifier = leads.lead_id
    where leads.converted_account_id is not null

),

people_billing as (

    select
        account_people.account_id,
        billing.*,
        {{ subscription_status_rank('billing.subscription_status') }} as status_rank
    from account_people
    inner join {{ ref('profile_billing') }} as billing
        on billing.profile_id = account_people.profile_id

),

billing_totals as (

    select
        account_id,
        count(distinct stripe_customer_id) as stripe_customer_count,
        -- never a sum across currencies (see profile_billing): the account's MRR is one currency's
        -- total, or unknown (null, 'MIXED') when its people pay in several
        sum(mrr) as mrr,
        max(case when mrr_currency = 'MIXED' then 1 else 0 end) = 1
            or count(distinct case when mrr > 0 then mrr_currency end) > 1 as has_mixed_currencies,
        max(case when mrr > 0 then mrr_currency end) as only_currency,
        max(case when is_paying then 1 else 0 end) = 1 as is_paying,
        min(paying_since) as paying_since
    from people_billing
    group by account_id

),

-- The account's Stripe status and plan are those of its best subscription: the one that bills the
-- most, among the most alive.
leading_billing as (

    select
        account_id,
        subscription_status as stripe_status,
        plan
    from people_billing
    qualify row_number() over (
        partition by account_id
        order by status_rank, mrr desc nulls last, stripe_customer_id
    ) = 1

),

people_counts as (

    select account_id, count(distinct profile_id) as profile_count
    from account_people
    group by account_id

)

select
    accounts.account_id,
    accounts.account_name,
    accounts.account_type,
    accounts.domain,
    accounts.plan as salesforce_plan,
    accounts.customer_since_date,
    coalesce(deal_totals.opportunity_count, 0) as opportunity_count,
    coalesce(deal_totals.open_opportunity_count, 0) as open_opportunity_count,
    coalesce(deal_totals.open_pipeline_amount, 0) as open_pipeline_amount,
    coalesce(deal_totals.won_opportunity_count, 0) as won_opportunity_count,
    coalesce(deal_totals.won_amount, 0) as won_amount,
    coalesce(deal_totals.lost_opportunity_count, 0) as lost_opportunity_count,
    deal_totals.last_won_date,
    coalesce(latest_deal.opportunity_status, 'none') as opportunity_status,
    latest_deal.latest_opportunity_stage,
    coalesce(people_counts.profile_count, 0) as profile_count,
    coalesce(billing_totals.stripe_customer_count, 0) as stripe_customer_count,
    coalesce(leading_billing.stripe_status, 'none') as stripe_status,
    leading_billing.plan as stripe_plan,
    case when billing_totals.has_mixed_currencies then null else coalesce(billing_totals.mrr, 0) end as mrr,
    case when billing_totals.has_mixed_currencies then 'MIXED' else billing_totals.only_currency end as mrr_currency,
    coalesce(billing_totals.is_paying, false) as is_paying,
    billing_totals.paying_since,
    accounts.created_at,
    accounts.system_modified_at
from accounts
left join deal_totals
    on deal_totals.account_id = accounts.account_id
left join latest_deal
    on latest_deal.account_id = accounts.account_id
left join people_counts
    on people_counts.account_id = accounts.account_id
left join billing_totals
    on billing_totals.account_id = accounts.account_id
left join leading_billing
    on leading_billing.account_id = accounts.account_id
