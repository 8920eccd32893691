-- The only feed that may carry opted-out people (reference §4.3 rule 8): one row per existing
-- Customer.io person who must get no marketing email, with what to do about it. It never creates
-- anyone: a person Customer.io does not have cannot be emailed by it anyway.
--   unsubscribe: opted out, or on a provider's suppression list: set `unsubscribed: true`
--                (the person and their history stay);
--   suppress:    an erasure request: Customer.io deletes the person and blocks re-adding them.

-- Also a person whose profile is eligible but whose address (the one Customer.io has) has an opt-out
-- in effect on it (consent_contact_points, reference §4.3 rule 1): sync_customerio_people leaves them
-- out, so only this feed can stop Customer.io's own campaigns reaching that address. The status
-- shown is the restrictive one: the profile's, else the address's.

with decided as (

    select
        profiles.profile_id,
        case
            when consent.status in ('opted_out', 'suppressed', 'erased') then consent.status
            else contact_point.status
        end as status,
        case
            when consent.status in ('opted_out', 'suppressed', 'erased') then consent.source
            else contact_point.source
        end as source,
        case
            when consent.status in ('opted_out', 'suppressed', 'erased') then consent.reason
            else contact_point.reason
        end as reason,
        case
            when consent.status in ('opted_out', 'suppressed', 'erased') then consent.updated_at
            else contact_point.updated_at
        end as updated_at,
        consent.status = 'erased' or contact_point.status = 'erased' as is_erased
    from {{ ref('customer_profiles') }} as profiles
    inner join {{ ref('consent_status') }} as consent
        on consent.profile_id = profiles.profile_id
        and consent.channel = 'email'
    left join {{ ref('consent_contact_points') }} as contact_point
        on contact_point.email = profiles.primary_email
        and contact_point.channel = 'email'
    where consent.status in ('opted_out', 'suppressed', 'erased')
        or contact_point.status in ('opted_out', 'suppressed', 'erased')

)

select
    profiles.customerio_identifier as id,
    profiles.customerio_id as cio_id,
    profiles.primary_email as email,
    profiles.profile_id,
    true as unsubscribed,
    case when coalesce(decided.is_erased, false) then 'suppress' else 'unsubscribe' end as action,
    decided.status as consent_status,
    decided.source as consent_source,
    decided.reason as consent_reason,
    decided.updated_at as consent_updated_at
from decided
inner join {{ ref('customer_profiles') }} as profiles
    on profiles.profile_id = decided.profile_id
where profiles.customerio_id is not null
