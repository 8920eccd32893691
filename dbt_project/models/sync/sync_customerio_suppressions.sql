-- The only feed that may carry opted-out people (reference §4.3 rule 8): one row per existing
-- Customer.io person who must get no marketing email, with what to do about it. It never creates
-- anyone: a person Customer.io does not have cannot be emailed by it anyway.
--   unsubscribe: opted out, or on a provider's suppression list: set `unsubscribed: true`
--                (the person and their history stay);
--   suppress:    an erasure request: Customer.io deletes the person and blocks re-adding them.

select
    profiles.customerio_identifier as id,
    profiles.customerio_id as cio_id,
    profiles.primary_email as email,
    profiles.profile_id,
    true as unsubscribed,
    case when consent.status = 'erased' then 'suppress' else 'unsubscribe' end as action,
    consent.status as consent_status,
    consent.source as consent_source,
    consent.reason as consent_reason,
    consent.updated_at as consent_updated_at
from {{ ref('consent_status') }} as consent
inner join {{ ref('customer_profiles') }} as profiles
    on profiles.profile_id = consent.profile_id
where consent.channel = 'email'
    and consent.status in ('opted_out', 'suppressed', 'erased')
    and profiles.customerio_id is not null
