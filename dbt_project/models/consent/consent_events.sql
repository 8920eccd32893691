-- Every consent signal we can see, one row per signal and identifier it names. A signal is a fact
-- from one source: an unsubscribe, a re-subscription, a provider suppression, an opt-out flag on a
-- CRM record, an opt-in box ticked on a form. consent_status resolves them per profile; this model
-- only collects and labels them, so an auditor can see every input the status was derived from.
--
-- `occurred_at` is null for a signal that is a current state without a date (an SMS opt-out list
-- row): it holds for as long as the source still shows it, and no opt-in can be shown to be later.
-- Where a state has no exact date, the latest moment it can have been set is used (the record's
-- last modification): later than the truth, so an opt-out can only look more recent, never older.

{%- set tracks_source = source('event_stream', 'tracks') %}
{%- set identifies_source = source('event_stream', 'identifies') %}
{%- set consent_tracks = var('consent_tracks') %}
{%- set consent_traits = var('consent_traits') %}
{#- (identifier type, column of `signals`): one output row per non-null identifier of a signal -#}
{%- set identifier_columns = [
    ('user_id', 'user_id'),
    ('anonymous_id', 'anonymous_id'),
    ('email', 'email'),
    ('customerio_id', 'customerio_id'),
    ('salesforce_lead_id', 'salesforce_lead_id'),
    ('salesforce_lead_id', 'salesforce_merged_into_lead_id'),
    ('salesforce_contact_id', 'salesforce_contact_id'),
    ('salesforce_contact_id', 'salesforce_merged_into_contact_id'),
] %}
{#- (flag column, Salesforce field, channel it opts out of) -#}
{%- set flag_channels = [('has_opted_out_of_email', 'HasOptedOutOfEmail', 'email')] %}
{%- for channel in var('consent_do_not_call_channels') %}
{%- do flag_channels.append(('do_not_call', 'DoNotCall', channel)) %}
{%- endfor %}

with

-- ---------------------------------------------------------------------------------- event stream

-- Track events that are consent signals (var `consent_tracks`). The event's own table adds its
-- properties (`reason`, `source`) when it has them.
{%- for table, spec in consent_tracks.items() %}
{%- set properties = event_table(table) %}

track__{{ table }} as (

    select
        'event_stream' as source,
        'track:{{ table }}' as signal,
        tracks.message_id as record_key,
        '{{ spec.channel }}' as channel,
        '{{ spec.kind }}' as kind,
        {{ 'true' if spec.get('explicit', false) else 'false' }} as is_explicit,
        {{ as_timestamptz('tracks.occurred_at') }} as occurred_at,
        tracks.event_name || coalesce(': ' || coalesce(properties.reason, properties.source), '') as reason,
        {{ signal_identifiers({'user_id': 'tracks.user_id', 'anonymous_id': 'tracks.anonymous_id', 'email': 'tracks.email'}) }}
    from {{ ref('stg_tracks') }} as tracks
    left join (
        select
            {{ column_or_null(properties, 'id', dbt.type_string()) }},
            {{ column_or_null(properties, 'reason', dbt.type_string()) }},
            {{ column_or_null(properties, 'source', dbt.type_string()) }}
        from {{ relation_or_empty(properties) }}
    ) as properties
        on properties.id = tracks.message_id
    where tracks.event_table = '{{ table }}'

),
{%- endfor %}

-- Identify traits that are consent signals (var `consent_traits`), from identify calls and from the
-- traits a track call carried (a form's opt-in box). The JavaScript SDK repeats a device's traits on
-- every later call, so a value counts once, when it first appears on the device (or, for server
-- calls without a device, on the user id): a repeat is not a new decision.
trait_values as (

    {%- for relation in [identifies_source, tracks_source] %}
    {%- set relation_loop = loop %}
    {%- for trait in consent_traits %}

    select
        '{{ trait }}' as trait,
        {{ clean_string('id') }} as message_id,
        {{ clean_string('anonymous_id') }} as anonymous_id,
        {{ clean_string('user_id') }} as user_id,
        {{ normalize_email('context_traits_email') }} as email,
        {{ as_timestamptz('timestamp') }} as occurred_at,
        coalesce(
            {{ as_boolean('context_traits_' ~ trait) }},
            {{ as_boolean(trait) }}
        ) as value
    from (
        select
            id,
            anonymous_id,
            user_id,
            timestamp,
            {{ column_or_null(relation, 'context_traits_email', dbt.type_string()) }},
            {{ column_or_null(relation, 'context_traits_' ~ trait, dbt.type_string()) }},
            {{ column_or_null(relation, trait, dbt.type_string()) }}
        from {{ relation }}
    ) as calls
    {{ 'union all' if not (loop.last and relation_loop.last) }}
    {%- endfor %}
    {%- endfor %}

),

trait_changes as (

    select
        *,
        lag(value) over (
            partition by trait, coalesce(anonymous_id, user_id)
            order by occurred_at, message_id
        ) as previous_value
    from trait_values
    where value is not null

),

traits as (

    select
        'event_stream' as source,
        'trait:' || trait as signal,
        message_id || ':' || trait as record_key,
        case trait
            {%- for trait, spec in consent_traits.items() %}
            when '{{ trait }}' then '{{ spec.channel }}'
            {%- endfor %}
        end as channel,
        case
            {%- for trait, spec in consent_traits.items() %}
            {%- if spec.get('if_true') %}
            when trait = '{{ trait }}' and value then '{{ spec.if_true }}'
            {%- endif %}
            {%- if spec.get('if_false') %}
            when trait = '{{ trait }}' and not value then '{{ spec.if_false }}'
            {%- endif %}
            {%- endfor %}
        end as kind,
        case trait
            {%- for trait, spec in consent_traits.items() %}
            when '{{ trait }}' then {{ 'true' if spec.get('explicit', false) else 'false' }}
            {%- endfor %}
        end as is_explicit,
        occurred_at,
        'identify trait ' || trait || ' = ' || case when value then 'true' else 'false' end as reason,
        {{ signal_identifiers({'user_id': 'user_id', 'anonymous_id': 'anonymous_id', 'email': 'email'}) }}
    from trait_changes
    where previous_value is null or previous_value <> value

),

-- -------------------------------------------------------------------------------------- Customer.io

-- The history of the global `unsubscribed` attribute: opt-outs, and re-subscriptions made in the
-- subscription centre (explicit unless the var says otherwise: our syncs never send `false`).
customerio_unsubscribes as (

    select
        'customerio' as source,
        'customerio:unsubscribes' as signal,
        activity_id as record_key,
        'email' as channel,
        case when is_unsubscribed then 'opt_out' else 'opt_in' end as kind,
        case
            when is_unsubscribed then true
            else {{ 'true' if var('consent_customerio_resubscribe_is_explicit') else 'false' }}
        end as is_explicit,
        {{ as_timestamptz('changed_at') }} as occurred_at,
        case when is_unsubscribed then 'unsubscribed in Customer.io' else 're-subscribed in Customer.io' end as reason,
        {{ signal_identifiers({'email': 'email', 'customerio_id': 'cio_id'}) }}
    from {{ ref('stg_customerio__unsubscribes') }}
    where is_unsubscribed is not null

),

-- The current state, for people whose change is older than the history the API returns.
customerio_unsubscribed_now as (

    select
        'customerio' as source,
        'customerio:customers.unsubscribed' as signal,
        cio_id as record_key,
        'email' as channel,
        'opt_out' as kind,
        true as is_explicit,
        {{ as_timestamptz('unsubscribed_at') }} as occurred_at,
        'unsubscribed in Customer.io' as reason,
        {{ signal_identifiers({'email': 'email', 'customerio_id': 'cio_id'}) }}
    from {{ ref('stg_customerio__customers') }}
    where is_unsubscribed

),

-- The email provider's suppression lists: hard bounces, blocks, spam reports, invalid addresses.
-- Delivery to these addresses is impossible or unwanted whatever the person's subscription says.
customerio_suppressions as (

    select
        'customerio' as source,
        'customerio:suppressions' as signal,
        suppression_type || ':' || email as record_key,
        'email' as channel,
        'suppression' as kind,
        suppression_type = 'spam_reports' as is_explicit,
        {{ as_timestamptz('suppressed_at') }} as occurred_at,
        suppression_type || coalesce(': ' || reason, '') as reason,
        {{ signal_identifiers({'email': 'email'}) }}
    from {{ ref('stg_customerio__suppressions') }}
    where email is not null

),

-- SMS STOP replies. The list has no dates: an opt-out holds while the person is on it (a START
-- reply removes them in Customer.io itself).
customerio_sms_optouts as (

    select
        'customerio' as source,
        'customerio:optouts' as signal,
        cio_id || ':' || coalesce(sender, '') as record_key,
        coalesce(channel, 'sms') as channel,
        'opt_out' as kind,
        true as is_explicit,
        {{ as_timestamptz('null') }} as occurred_at,
        'STOP reply' || coalesce(' to ' || sender, '') as reason,
        {{ signal_identifiers({'customerio_id': 'cio_id'}) }}
    from {{ ref('stg_customerio__optouts') }}
    where cio_id is not null

),

-- --------------------------------------------------------------------------------------- Salesforce

-- Leads and contacts, deleted ones included: an opt-out recorded on a record that was later merged
-- away or deleted still speaks for the person (it also names the record it was merged into).
salesforce_people as (

    select
        'lead' as record_type,
        lead_id as record_id,
        cast(null as {{ dbt.type_string() }}) as merged_into_id,
        email,
        has_opted_out_of_email,
        do_not_call,
        {{ as_timestamptz('coalesce(last_modified_at, system_modified_at, created_at)') }} as modified_at
    from {{ ref('stg_salesforce__leads') }}

    union all

    select
        'contact' as record_type,
        contact_id as record_id,
        cast(null as {{ dbt.type_string() }}) as merged_into_id,
        email,
        has_opted_out_of_email,
        do_not_call,
        {{ as_timestamptz('coalesce(last_modified_at, system_modified_at, created_at)') }} as modified_at
    from {{ ref('stg_salesforce__contacts') }}

    union all

    select
        record_type,
        record_id,
        master_record_id as merged_into_id,
        email,
        has_opted_out_of_email,
        do_not_call,
        {{ as_timestamptz('deleted_at') }} as modified_at
    from {{ ref('stg_salesforce__deleted_people') }}

),

-- Field history of the two flags (tracked on leads): every change is a signal with its exact time.
-- Setting a flag is an opt-out. Clearing one is recorded as an opt-in that is not explicit: a rep
-- unticking a box is not the person's own, attributable consent, so it cannot reverse an opt-out.
salesforce_flag_history as (

    select
        history.lead_history_id,
        history.lead_id,
        history.field_name,
        lower(history.new_value) in ('true', '1') as is_set,
        {{ as_timestamptz('history.changed_at') }} as changed_at,
        people.email,
        people.merged_into_id
    from {{ ref('stg_salesforce__lead_history') }} as history
    left join salesforce_people as people
        on people.record_type = 'lead' and people.record_id = history.lead_id
    where history.field_name in ('HasOptedOutOfEmail', 'DoNotCall')
        and lower(history.new_value) in ('true', 'false', '1', '0')

),

-- The flags as they stand, for records whose setting is not in the history (contacts, and leads
-- whose history was not tracked): dated by the record's last change.
salesforce_flags_now as (

    {%- for column, field, channel in flag_channels %}

    select
        people.record_type,
        people.record_id,
        people.merged_into_id,
        people.email,
        '{{ field }}' as field_name,
        '{{ channel }}' as channel,
        people.modified_at
    from salesforce_people as people
    where people.{{ column }}
        and not exists (
            select 1
            from salesforce_flag_history as history
            where history.lead_id = people.record_id
                and history.field_name = '{{ field }}'
                and history.is_set
        )
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

salesforce_flags as (

    select
        'salesforce' as source,
        'salesforce:' || record_type || '.' || field_name as signal,
        record_id as record_key,
        channel,
        'opt_out' as kind,
        false as is_explicit,
        modified_at as occurred_at,
        field_name || ' on ' || record_type || ' ' || record_id as reason,
        {{ signal_identifiers({
            'email': 'email',
            'salesforce_lead_id': "case when record_type = 'lead' then record_id end",
            'salesforce_merged_into_lead_id': "case when record_type = 'lead' then merged_into_id end",
            'salesforce_contact_id': "case when record_type = 'contact' then record_id end",
            'salesforce_merged_into_contact_id': "case when record_type = 'contact' then merged_into_id end",
        }) }}
    from salesforce_flags_now

    {%- for column, field, channel in flag_channels %}

    union all

    select
        'salesforce' as source,
        'salesforce:lead_history.' || field_name as signal,
        lead_history_id as record_key,
        '{{ channel }}' as channel,
        case when is_set then 'opt_out' else 'opt_in' end as kind,
        false as is_explicit,
        changed_at as occurred_at,
        field_name || case when is_set then ' set' else ' cleared' end || ' on lead ' || lead_id as reason,
        {{ signal_identifiers({'email': 'email', 'salesforce_lead_id': 'lead_id', 'salesforce_merged_into_lead_id': 'merged_into_id'}) }}
    from salesforce_flag_history
    where field_name = '{{ field }}'
    {%- endfor %}

),

-- ---------------------------------------------------------------------------------------- together

signals as (

    {%- set parts = [] %}
    {%- for table in consent_tracks %}{% do parts.append('track__' ~ table) %}{% endfor %}
    {%- do parts.extend([
        'traits',
        'customerio_unsubscribes',
        'customerio_unsubscribed_now',
        'customerio_suppressions',
        'customerio_sms_optouts',
        'salesforce_flags',
    ]) %}
    {%- for part in parts %}

    select
        signal || ':' || record_key || ':' || channel as consent_event_id,
        *
    from {{ part }}
    where kind is not null
    {{ 'union all' if not loop.last }}
    {%- endfor %}

)

{%- for identifier_type, column in identifier_columns %}

select
    consent_event_id,
    source,
    signal,
    channel,
    kind,
    is_explicit,
    occurred_at,
    reason,
    '{{ identifier_type }}' as identifier_type,
    {{ column }} as identifier
from signals
where {{ column }} is not null
{{ 'union all' if not loop.last }}
{%- endfor %}
