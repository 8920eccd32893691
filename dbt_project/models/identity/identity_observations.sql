-- Every identifier a source record names, one row per (record, identifier), normalised and checked.
-- A "record" is what links identifiers: one event (events with the same anonymous_id, user_id and
-- email are grouped, since they link the same identifiers), one Salesforce lead or contact, one
-- Stripe customer, one Customer.io person. `reject_reason` is null for a valid identifier; rejected
-- values are listed in identity_rejected and never become identifiers.

{%- set event_models = [
    ('identifies', ref('stg_identifies')),
    ('tracks', ref('stg_tracks')),
    ('pages', ref('stg_pages')),
] %}

with

-- ------------------------------------------------------------------------------- event stream

{%- for name, model in event_models %}

{{ name }} as (

    select
        anonymous_id,
        user_id,
        email,
        min(occurred_at) as first_seen,
        max(occurred_at) as last_seen,
        count(*) as records
    from {{ model }}
    where anonymous_id is not null or user_id is not null or email is not null
    group by anonymous_id, user_id, email

),

{{ name }}_records as (

    select
        *,
        cast(row_number() over (order by anonymous_id, user_id, email) as {{ dbt.type_string() }}) as record_key
    from {{ name }}

),
{%- endfor %}

-- ----------------------------------------------------------------------------------- Salesforce

-- A lead names its email, the contact it was converted to (ConvertedContactId) and the product user
-- it belongs to (Product_User_Id__c, set by our own sync).
salesforce_leads as (

    select
        lead_id as record_key,
        lead_id,
        email,
        converted_contact_id,
        product_user_id,
        created_at as first_seen,
        coalesce(last_modified_at, created_at) as last_seen
    from {{ ref('stg_salesforce__leads') }}

),

salesforce_contacts as (

    select
        contact_id as record_key,
        contact_id,
        email,
        product_user_id,
        created_at as first_seen,
        coalesce(last_modified_at, created_at) as last_seen
    from {{ ref('stg_salesforce__contacts') }}

),

-- Deleted leads and contacts still link: a merge deletes the losing record and names the survivor
-- (MasterRecordId), and the deleted record's email was that person's.
salesforce_deleted as (

    select
        record_id as record_key,
        case record_type when 'lead' then 'salesforce_lead_id' else 'salesforce_contact_id' end as record_type,
        record_id,
        master_record_id,
        email,
        product_user_id,
        deleted_at as first_seen,
        deleted_at as last_seen
    from {{ ref('stg_salesforce__deleted_people') }}

),

-- --------------------------------------------------------------------------- Stripe, Customer.io

stripe_customers as (

    select
        customer_id as record_key,
        customer_id,
        email,
        user_id,
        created_at as first_seen,
        created_at as last_seen
    from {{ ref('stg_stripe__customers') }}

),

-- Customer.io's own id (cio_id) is the customerio_id. The workspace id (`customer_id`) is our user id,
-- or the person's email for people added by email only (RudderStack sends `userId || email`).
customerio_customers as (

    select
        cio_id as record_key,
        cio_id,
        email,
        customer_id,
        case when customer_id like '%@%' then 'email' else 'user_id' end as customer_id_type,
        created_at as first_seen,
        created_at as last_seen
    from {{ ref('stg_customerio__customers') }}

),

-- ----------------------------------------------------------------------------------- long form

named as (

    {%- for name, model in event_models %}
    {%- for column in ['anonymous_id', 'user_id', 'email'] %}
    select '{{ name }}' as source, record_key, '{{ column }}' as identifier_type, {{ column }} as raw_identifier,
        first_seen, last_seen, records
    from {{ name }}_records
    union all
    {%- endfor %}
    {%- endfor %}

    {%- for column, identifier_type in [
        ('lead_id', 'salesforce_lead_id'), ('email', 'email'),
        ('converted_contact_id', 'salesforce_contact_id'), ('product_user_id', 'user_id')] %}
    select 'salesforce_leads', record_key, '{{ identifier_type }}', {{ column }}, first_seen, last_seen, 1
    from salesforce_leads
    union all
    {%- endfor %}

    {%- for column, identifier_type in [
        ('contact_id', 'salesforce_contact_id'), ('email', 'email'), ('product_user_id', 'user_id')] %}
    select 'salesforce_contacts', record_key, '{{ identifier_type }}', {{ column }}, first_seen, last_seen, 1
    from salesforce_contacts
    union all
    {%- endfor %}

    {%- for column in ['record_id', 'master_record_id'] %}
    select 'salesforce_deleted', record_key, record_type, {{ column }}, first_seen, last_seen, 1
    from salesforce_deleted
    union all
    {%- endfor %}
    {%- for column, identifier_type in [('email', 'email'), ('product_user_id', 'user_id')] %}
    select 'salesforce_deleted', record_key, '{{ identifier_type }}', {{ column }}, first_seen, last_seen, 1
    from salesforce_deleted
    union all
    {%- endfor %}

    {%- for column, identifier_type in [
        ('customer_id', 'stripe_customer_id'), ('email', 'email'), ('user_id', 'user_id')] %}
    select 'stripe_customers', record_key, '{{ identifier_type }}', {{ column }}, first_seen, last_seen, 1
    from stripe_customers
    union all
    {%- endfor %}

    select 'customerio_customers', record_key, 'customerio_id', cio_id, first_seen, last_seen, 1
    from customerio_customers
    union all
    select 'customerio_customers', record_key, 'email', email, first_seen, last_seen, 1
    from customerio_customers
    union all
    select 'customerio_customers', record_key, customer_id_type, customer_id, first_seen, last_seen, 1
    from customerio_customers

),

normalised as (

    select
        source,
        record_key,
        identifier_type,
        raw_identifier,
        case
            when identifier_type = 'email' then {{ identity_normalize('email', 'raw_identifier') }}
            else {{ identity_normalize('id', 'raw_identifier') }}
        end as identifier,
        {{ identity_timestamptz('first_seen') }} as first_seen,
        {{ identity_timestamptz('last_seen') }} as last_seen,
        records
    from named
    -- a record without a value of this type names nothing (no observation)
    where {{ clean_string('raw_identifier') }} is not null

)

select
    source,
    record_key,
    identifier_type,
    raw_identifier,
    identifier,
    first_seen,
    last_seen,
    records,
    {{ identity_reject_reason('identifier_type', 'identifier') }} as reject_reason
from normalised
