{#-
    Identify traits arrive two ways (rudderstack-formats.md §4.2): as `context_traits_<trait>` (JS v3,
    Python and every new destination) and, on destinations with `allowUsersContextTraits` or for root
    `traits`, as a bare `<trait>` column. `identifies` and `users` share that layout.
-#}

{#- The traits the staging models expose. A company given as an object lands as `company_name`. -#}
{% macro identify_trait_names() -%}
    {{ return(['email', 'first_name', 'last_name', 'name', 'phone', 'company', 'company_name']) }}
{%- endmacro %}

{#-
    identify_trait_columns(relation): select-list entries for both spellings of every trait, each
    through `column_or_null`, so the model builds whichever of them exist. Ends with a comma.
-#}
{% macro identify_trait_columns(relation) -%}
    {%- for trait in identify_trait_names() %}
        {{ column_or_null(relation, 'context_traits_' ~ trait, dbt.type_string()) }},
        {{ column_or_null(relation, trait, dbt.type_string()) }},
    {%- endfor %}
{%- endmacro %}

{#- identify_trait(trait): the trait's cleaned value, `context_traits_<trait>` first, then `<trait>`. -#}
{% macro identify_trait(trait) -%}
    coalesce({{ clean_string('context_traits_' ~ trait) }}, {{ clean_string(trait) }})
{%- endmacro %}
