{#-
    Columns of the event_stream tables come from the data: a column such as `context_traits_email`
    exists only once some event has carried that field. Staging models select optional columns
    through these macros so they build on a warehouse where the column is still missing.
-#}

{#-
    column_or_null(relation, column_name, data_type)

    Renders the quoted column if `relation` has it (matched case-insensitively, rendered with the
    warehouse's own spelling, so it also works where names are upper-case), otherwise
    `cast(null as <data_type>) as <column_name>`. Meant for a select list. The relation's columns
    are only looked up when dbt executes (`execute`); at parse time it renders the null form.
-#}
{% macro column_or_null(relation, column_name, data_type) -%}
    {#- a namespace, because a plain `set` inside a for loop does not outlive the loop -#}
    {%- set found = namespace(name=none) -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- if column.name | lower == column_name | lower -%}
                {%- set found.name = column.name -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if found.name is not none -%}
        {{ adapter.quote(found.name) }}
    {%- else -%}
        cast(null as {{ data_type }}) as {{ column_name }}
    {%- endif -%}
{%- endmacro %}
