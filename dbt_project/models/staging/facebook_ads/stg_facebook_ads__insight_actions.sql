-- Facebook Ads actions per ad and day, one row per action type (link_click, lead, ...): dlt's child
-- table `insights__actions`, keyed back to its insights row through dlt's row ids.

{%- set insights_src = source('facebook_ads', 'insights') %}
{%- set actions_src = dlt_child_table(insights_src, 'actions') %}

-- Every column may be missing (not extracted yet, another org or account): see macros/saas.sql.
with actions as (

    select
        {{ column_or_null(actions_src, '_dlt_parent_id', dbt.type_string()) }},
        {{ column_or_null(actions_src, 'action_type', dbt.type_string()) }},
        {{ column_or_null(actions_src, 'value', dbt.type_numeric()) }}
    from {{ relation_or_empty(actions_src) }}

),

insights as (

    select
        {{ column_or_null(insights_src, '_dlt_id', dbt.type_string()) }},
        {{ column_or_null(insights_src, 'ad_id', dbt.type_string()) }},
        {{ column_or_null(insights_src, 'date_start', 'date') }}
    from {{ relation_or_empty(insights_src) }}

)

select
    insights.ad_id,
    insights.date_start as report_date,
    actions.action_type,
    actions.value as action_count
from actions
inner join insights
    on actions._dlt_parent_id = insights._dlt_id
