{#-
    Identifiers for identity resolution (models/identity): their types, how each is normalised, and
    which values never become an identifier (reference: reverse-etl-identity-consent.md §3.3, §3.4).
-#}

{#- The identifier types identity_graph knows, in the order used to break ties. -#}
{% macro identity_identifier_types() -%}
    {{ return([
        'anonymous_id', 'user_id', 'email', 'salesforce_lead_id', 'salesforce_contact_id',
        'stripe_customer_id', 'customerio_id',
    ]) }}
{%- endmacro %}

{#-
    identity_normalize(identifier_type, expression): the identifier as identity_graph stores it.
    Emails trimmed and lower-cased (normalize_email), every other id trimmed (clean_string): ids are
    case-sensitive in the systems that issue them (Salesforce 15/18-character ids, Stripe ids).
-#}
{% macro identity_normalize(identifier_type, expression) -%}
    {%- if identifier_type == 'email' -%}
        {{ normalize_email(expression) }}
    {%- else -%}
        {{ clean_string(expression) }}
    {%- endif -%}
{%- endmacro %}

{#- identity_sql_string(value): a var's value as a SQL string literal, quotes doubled. -#}
{% macro identity_sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{#-
    identity_reject_reason(type_column, value_column): a SQL expression, the reason a normalised
    identifier is rejected, or null when it is a valid identifier:
      junk_value              one of var('identity_junk_values'), case-insensitive (null, undefined,
                              unknown, anonymous, NaN, -1, ...)
      all_zero                only zeros and dashes: 0, 0000, the all-zero UUID
      invalid_email           an email without text on both sides of an '@', or with a blank inside
      excluded_email_domain   an email at one of var('identity_excluded_email_domains') (test and
                              internal domains) or at a subdomain of one
      excluded_email_pattern  an email matching one of var('identity_excluded_email_patterns') (LIKE
                              patterns, e.g. internal test aliases '%+ruddertest@%')
-#}
{% macro identity_reject_reason(type_column, value_column) -%}
    {%- set junk = var('identity_junk_values') -%}
    {%- set domains = var('identity_excluded_email_domains') -%}
    {%- set patterns = var('identity_excluded_email_patterns') -%}
    case
        {%- if junk | length > 0 %}
        when lower({{ value_column }}) in (
            {%- for value in junk %}{{ identity_sql_string(value | lower) }}{{ ', ' if not loop.last }}{% endfor -%}
        ) then 'junk_value'
        {%- endif %}
        when replace(replace({{ value_column }}, '0', ''), '-', '') = '' then 'all_zero'
        when {{ type_column }} = 'email'
            and (
                {{ value_column }} not like '%_@_%'
                or {{ value_column }} like '% %'
                -- a no-break space inside an address (one around it is trimmed) is no valid address
                or {{ value_column }} like '%' || chr(160) || '%'
            )
            then 'invalid_email'
        {%- if domains | length > 0 %}
        {#- the domain itself and every subdomain of it (test@sub.example.com is as much a test
            address as test@example.com); '%@%.' keeps notexample.com out -#}
        when {{ type_column }} = 'email' and (
            {%- for domain in domains %}
            {{ value_column }} like {{ identity_sql_string('%@' ~ (domain | lower)) }}
            or {{ value_column }} like {{ identity_sql_string('%@%.' ~ (domain | lower)) }}{{ ' or' if not loop.last }}
            {%- endfor %}
        ) then 'excluded_email_domain'
        {%- endif %}
        {%- if patterns | length > 0 %}
        when {{ type_column }} = 'email' and (
            {%- for pattern in patterns %}
            {{ value_column }} like {{ identity_sql_string(pattern | lower) }}{{ ' or' if not loop.last }}
            {%- endfor %}
        ) then 'excluded_email_pattern'
        {%- endif %}
    end
{%- endmacro %}

{#- identity_timestamptz(expression): an instant (DuckDB TIMESTAMPTZ, Snowflake TIMESTAMP_TZ). -#}
{% macro identity_timestamptz(expression) -%}
    cast({{ expression }} as timestamp with time zone)
{%- endmacro %}

{#-
    identity_profile_id(type_expression, identifier_expression): the profile id a component gets
    from its anchor identifier (its earliest-seen one): md5 of '<type>:<identifier>'. A pure function
    of the anchor, so a full rebuild gives every profile the same id again.
-#}
{% macro identity_profile_id(type_expression, identifier_expression) -%}
    {{ dbt.hash(type_expression ~ " || ':' || " ~ identifier_expression) }}
{%- endmacro %}

{#-
    identity_link_cap(type_column, linked_type_column): a SQL expression, the hub guard's cap for an
    identifier of one type linked to identifiers of another: the most links it may have before it is
    quarantined, or null for no cap. From var('identity_link_caps') ({identifier type or '*':
    {linked type: cap or null}}; an exact type before '*'), else var('identity_max_links_per_type').
-#}
{% macro identity_link_cap(type_column, linked_type_column) -%}
    {%- set caps = var('identity_link_caps', {}) or {} -%}
    {%- set default = var('identity_max_links_per_type') | int -%}
    case
        {%- for identifier_type, by_linked in caps.items() if identifier_type != '*' %}
        {%- for linked_type, cap in by_linked.items() %}
        when {{ type_column }} = {{ identity_sql_string(identifier_type) }}
            and {{ linked_type_column }} = {{ identity_sql_string(linked_type) }}
            then {{ 'cast(null as ' ~ dbt.type_int() ~ ')' if cap is none else cap | int }}
        {%- endfor %}
        {%- endfor %}
        {%- for linked_type, cap in caps.get('*', {}).items() %}
        when {{ linked_type_column }} = {{ identity_sql_string(linked_type) }}
            then {{ 'cast(null as ' ~ dbt.type_int() ~ ')' if cap is none else cap | int }}
        {%- endfor %}
        else {{ default }}
    end
{%- endmacro %}
