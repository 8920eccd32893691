{#- Helpers of the consent, marts, audience and sync models (models/consent, marts, audiences, sync). -#}

{#-
    event_table(name): the loader's table of one track event (`event_stream.<name>`, its properties as
    columns), read through the `tracks` source: the same load writes both, so the model's dependency on
    `tracks` is the right one, and the relation follows the source's database and schema in every
    target. Wrap it in `relation_or_empty`: the table exists only once such an event was loaded.
-#}
{% macro event_table(name) -%}
    {{ return(source('event_stream', 'tracks').incorporate(path={'identifier': name})) }}
{%- endmacro %}

{#-
    as_boolean(expression): a boolean from a boolean or from text ('true', 'false', 't', '1', ...);
    anything else is null. Traits arrive typed by the first value the loader saw, so a column can be
    text in one warehouse and boolean in another; casting through text reads both.
-#}
{% macro as_boolean(expression) -%}
    {{ dbt.safe_cast('cast(' ~ expression ~ ' as ' ~ dbt.type_string() ~ ')', dbt.type_boolean()) }}
{%- endmacro %}

{#- as_timestamptz(expression): an instant (DuckDB TIMESTAMPTZ, Snowflake TIMESTAMP_TZ), so signals from
    different sources compare on one type. -#}
{% macro as_timestamptz(expression) -%}
    cast({{ expression }} as timestamp with time zone)
{%- endmacro %}

{#- epoch_seconds(expression): Unix seconds of an instant, the way Customer.io takes times. -#}
{% macro epoch_seconds(expression) -%}
    {{ return(adapter.dispatch('epoch_seconds')(expression)) }}
{%- endmacro %}

{% macro default__epoch_seconds(expression) -%}
    cast(floor(epoch({{ expression }})) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro snowflake__epoch_seconds(expression) -%}
    date_part(epoch_second, {{ expression }})
{%- endmacro %}

{#-
    as_of_timestamp(): "now" for models with a time window: the var `audience_as_of` when set (a
    backfill, a test), else the current time.
-#}
{% macro as_of_timestamp() -%}
    {%- if var('audience_as_of', none) -%}
        {{ as_timestamptz("'" ~ var('audience_as_of') ~ "'") }}
    {%- else -%}
        {{ as_timestamptz(dbt.current_timestamp()) }}
    {%- endif -%}
{%- endmacro %}

{#- sql_list(values): a list of strings as a SQL list literal ('a', 'b'); ('') when empty, so that
    `x in (...)` stays valid SQL and matches nothing. -#}
{% macro sql_list(values) -%}
    {%- if values | length == 0 -%}
        ('')
    {%- else -%}
        ({%- for value in values -%}'{{ value }}'{{ ", " if not loop.last }}{%- endfor -%})
    {%- endif -%}
{%- endmacro %}

{#-
    signal_identifiers(given): the identifier columns every consent signal carries, in the order
    consent_events unions them; `given` maps a column to its expression in this source, and every
    identifier the source does not have is a typed null.
-#}
{% macro signal_identifiers(given) -%}
{%- set names = [
    'user_id', 'anonymous_id', 'email', 'customerio_id', 'salesforce_lead_id',
    'salesforce_merged_into_lead_id', 'salesforce_contact_id', 'salesforce_merged_into_contact_id',
] -%}
{%- for name in names %}
    {{ given.get(name, 'cast(null as ' ~ dbt.type_string() ~ ')') }} as {{ name }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro %}

{#-
    Consent precedence (reference §4.3), shared by consent_status (per profile) and
    consent_contact_points (per email address), so the two cannot disagree on the rules.
    consent_summary_columns(): aggregates over a group of signals (kind, is_explicit, occurred_at),
    the latest moment of each kind (1/0 flags rather than booleans: every warehouse can take the max
    of a number). consent_status_case(): the status from those columns.
-#}
{% macro consent_summary_columns() -%}
        max(case when kind = 'erasure' then 1 else 0 end) as has_erasure,
        max(case when kind = 'suppression' and occurred_at is null then 1 else 0 end) as has_undated_suppression,
        max(case when kind = 'suppression' then occurred_at end) as last_suppression_at,
        max(case when kind = 'unsuppress' and is_explicit then occurred_at end) as last_unsuppress_at,
        max(case when kind = 'opt_out' and occurred_at is null then 1 else 0 end) as has_undated_opt_out,
        max(case when kind = 'opt_out' then occurred_at end) as last_opt_out_at,
        max(case when kind = 'opt_in' and is_explicit then occurred_at end) as last_explicit_opt_in_at
{%- endmacro %}

{% macro consent_status_case() -%}
        case
            when has_erasure = 1
                then 'erased'
            when has_undated_suppression = 1
                or (
                    last_suppression_at is not null
                    and (last_unsuppress_at is null or last_unsuppress_at <= last_suppression_at)
                )
                then 'suppressed'
            when has_undated_opt_out = 1
                or (
                    last_opt_out_at is not null
                    and (last_explicit_opt_in_at is null or last_explicit_opt_in_at <= last_opt_out_at)
                )
                then 'opted_out'
            when last_explicit_opt_in_at is not null
                then 'opted_in'
            else 'unknown'
        end
{%- endmacro %}

{#- consent_decided_by(decided, signals): whether a signal is of the kind that decided the status, for
    picking the latest such signal as the one that decided (for `unknown`, any signal: what was seen
    and not counted). -#}
{% macro consent_decided_by(decided, signals) -%}
(
        ({{ decided }}.status = 'erased' and {{ signals }}.kind = 'erasure')
        or ({{ decided }}.status = 'suppressed' and {{ signals }}.kind = 'suppression')
        or ({{ decided }}.status = 'opted_out' and {{ signals }}.kind = 'opt_out')
        or ({{ decided }}.status = 'opted_in' and {{ signals }}.kind = 'opt_in' and {{ signals }}.is_explicit)
        or {{ decided }}.status = 'unknown'
    )
{%- endmacro %}

{#- consent_eligibility_columns(status, channel): status, eligible and needs_opt_in from a decided status
    (null: no signal) and the channel. Unknown is eligible only on channels that need no opt-in. -#}
{% macro consent_eligibility_columns(status, channel) -%}
{%- set opt_in_channels = var('consent_opt_in_channels') -%}
    coalesce({{ status }}, 'unknown') as status,
    coalesce({{ status }}, 'unknown') = 'opted_in'
        or (
            coalesce({{ status }}, 'unknown') = 'unknown'
            and {{ channel }} not in {{ sql_list(opt_in_channels) }}
        ) as eligible,
    {{ channel }} in {{ sql_list(opt_in_channels) }} as needs_opt_in
{%- endmacro %}

{#- consent_restrictive_kinds(): the kinds of signal that take consent away. Fail closed: these reach
    every contact point they can be linked to, while opt-ins reach only the ones they name. -#}
{% macro consent_restrictive_kinds() -%}
    ('opt_out', 'suppression', 'erasure')
{%- endmacro %}
