{#-
    audience_select(members, audience): the rows of an audience model (models/audiences/).

    `members` names a CTE with one row per member: `profile_id`, `member_since` (when the person
    joined the audience) and any columns listed in `audience.columns`. `audience` is the model's
    `meta.audience` (see models/audiences/_audiences.yml). The macro adds what a sync needs to
    address the person, and keeps only people eligible on the audience's consent channel: an
    audience is marketing, so an opted-out, suppressed or (on an opt-in channel) unknown person is
    never a member, whatever the definition says; nor is a person whose address (the one sent) has
    an opt-out in effect on it (consent_contact_points).
-#}
{% macro audience_select(members, audience) -%}
select
    profiles.profile_id,
    profiles.primary_email as email,
    profiles.user_id,
    profiles.customerio_id,
    profiles.customerio_identifier,
    {{ members }}.member_since
    {%- for column in audience.get('columns', []) %},
    {{ members }}.{{ column }}
    {%- endfor %}
from {{ members }}
inner join {{ ref('customer_profiles') }} as profiles
    on profiles.profile_id = {{ members }}.profile_id
inner join {{ ref('consent_status') }} as consent
    on consent.profile_id = {{ members }}.profile_id
    and consent.channel = '{{ audience.channel }}'
-- the address sent must itself be eligible (reference §4.3 rule 1: consent is per contact point)
inner join {{ ref('consent_contact_points') }} as contact_point
    on contact_point.email = profiles.primary_email
    and contact_point.channel = '{{ audience.channel }}'
where consent.eligible
    and contact_point.eligible
    -- an address to reach, and an id to address the person by
    and profiles.primary_email is not null
    and profiles.customerio_identifier is not null
{%- endmacro %}
