{#-
    Custom schemas are used as named: a model configured `schema: identity` lands in schema
    `identity` (not dbt's default `<target_schema>_identity`). Models without a custom schema land in
    the target schema (`main` on DuckDB). Same behaviour in every target, so relation names in dev
    and prod match.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
