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
