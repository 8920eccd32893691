{#- Small expression helpers shared by the staging models. -#}

{#- whitespace(): the characters trimmed off identifiers. Space alone is not enough: SDKs and CRM imports
    leave tabs and line breaks around emails, and a tab kept would split one person into two profiles.
    Text pasted from web pages, Word or spreadsheets brings Unicode blanks too: the no-break space
    (160), the narrow no-break space (8239), the zero-width space (8203) and the byte-order mark
    (65279); 'x@acme.io' followed by a no-break space was a second identifier for the same address.
    `chr` takes a Unicode code point under that name in DuckDB and Snowflake. -#}
{% macro whitespace() -%}
    ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(160) || chr(8239) || chr(8203) || chr(65279)
{%- endmacro %}

{#- clean_string(expression): the value as text, with surrounding whitespace removed; empty or blank
    becomes null. -#}
{% macro clean_string(expression) -%}
    nullif(trim(cast({{ expression }} as {{ dbt.type_string() }}), {{ whitespace() }}), '')
{%- endmacro %}

{#- normalize_email(expression): lower-cased, surrounding whitespace removed; empty or blank becomes null. -#}
{% macro normalize_email(expression) -%}
    lower({{ clean_string(expression) }})
{%- endmacro %}
