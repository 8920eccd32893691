-- Lead fields the warehouse knows better than Salesforce: one row per open (unconverted) lead that
-- belongs to a profile, duplicates included (each gets the same facts). Converted leads are
-- read-only in Salesforce, so they are left out. Operational: it carries opted-out people, because
-- telling Salesforce about an opt-out is its job; the opt-out flag is only ever set, never cleared
-- (null is not sent), as a sync never sets a person back to subscribed.

select
    leads.lead_id as id,
    profiles.profile_id,
    profiles.user_id as product_user_id,
    -- Salesforce's picklist has no `visitor`: a person with a lead is a lead at least
    case when profiles.lifecycle_stage = 'visitor' then 'lead' else profiles.lifecycle_stage end as lifecycle_stage,
    profiles.signed_up_at,
    -- the person's opt-out, or one in effect on the lead's own address (consent is per contact point)
    case
        when consent.status in ('opted_out', 'suppressed', 'erased')
            or contact_point.status in ('opted_out', 'suppressed', 'erased')
            then true
    end as has_opted_out_of_email
from {{ ref('stg_salesforce__leads') }} as leads
inner join {{ ref('identity_graph') }} as graph
    on graph.identifier_type = 'salesforce_lead_id'
    and graph.identifier = leads.lead_id
inner join {{ ref('customer_profiles') }} as profiles
    on profiles.profile_id = graph.profile_id
left join {{ ref('consent_status') }} as consent
    on consent.profile_id = profiles.profile_id
    and consent.channel = 'email'
left join {{ ref('consent_contact_points') }} as contact_point
    on contact_point.email = leads.email
    and contact_point.channel = 'email'
where not leads.is_converted
