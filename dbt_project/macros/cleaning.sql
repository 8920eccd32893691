{#- Small expression helpers shared by the staging models. -#}

{#- clean_string(expression): the value as text, trimmed; empty or blank becomes null. -#}
{% macro clean_string(expression) -%}
    nullif(trim(cast({{ expression }} as {{ dbt.type_string() }})), '')
{%- endmacro %}

{#- normalize_email(expression): lower-cased and trimmed; empty or blank becomes null. -#}
{% macro normalize_email(expression) -%}
    lower({{ clean_string(expression) }})
{%- endmacro %}
