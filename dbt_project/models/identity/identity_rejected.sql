-- Values that were named as identifiers but never become one (junk, invalid or excluded emails), one
-- row per (identifier_type, value, reason), with how often and where they were seen. The rules are in
-- macros/identity/identity_identifiers.sql and the vars identity_junk_values,
-- identity_excluded_email_domains and identity_excluded_email_patterns.

select
    identifier_type,
    identifier,
    reject_reason,
    min(source) as first_source,
    count(distinct source) as sources,
    sum(records) as records,
    min(first_seen) as first_seen,
    max(last_seen) as last_seen
from {{ ref('identity_observations') }}
where reject_reason is not null
group by identifier_type, identifier, reject_reason
