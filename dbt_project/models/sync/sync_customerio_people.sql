-- People to create or update in Customer.io: one row per person Customer.io may email (marketing).
-- Consent is applied here: a profile not eligible for email (opted out, suppressed, erased, or
-- unknown where email needs an opt-in) is not in this feed; sync_customerio_suppressions carries
-- them. `unsubscribed` is deliberately not an attribute here: everyone here would be `false`, and
-- sending `false` would overwrite an unsubscribe made in Customer.io since the last extract (a sync
-- never sets a person back to subscribed, reference §4.3 rule 6).

select
    profiles.customerio_identifier as id,
    profiles.primary_email as email,
    profiles.profile_id,
    profiles.user_id,
    profiles.first_name,
    profiles.last_name,
    profiles.company_name as company,
    profiles.title,
    profiles.country,
    profiles.lifecycle_stage,
    profiles.plan,
    profiles.account_type,
    profiles.opportunity_status,
    profiles.subscription_status,
    profiles.mrr,
    -- Customer.io's own `created_at` convention: Unix seconds of when the person became known
    {{ epoch_seconds('coalesce(profiles.signed_up_at, profiles.first_seen_at)') }} as created_at
from {{ ref('customer_profiles') }} as profiles
-- Re-asserted on the address sent (reference §4.3 rules 1, 3, 8), not only through email_eligible:
-- an address with an opt-out in effect never goes out, whatever the profile's other addresses say.
inner join {{ ref('consent_contact_points') }} as contact_point
    on contact_point.email = profiles.primary_email
    and contact_point.channel = 'email'
    and contact_point.eligible
where profiles.email_eligible
    and profiles.primary_email is not null
    and profiles.customerio_identifier is not null
