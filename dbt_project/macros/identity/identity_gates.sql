{#-
    Run gates (reverse-etl-identity-consent.md §3.4 step 8): tests on identity_graph that keep a graph
    which changed too much from reaching consent, marts and the syncs. `dbt build` runs a model's
    tests before anything that reads it, so a failing gate stops everything downstream of identity
    in that run, and Dagster shows it as a failed check on identity_graph. A person then looks at the
    change (identity_merges and the rows the test returns) and, if it is right, lets one run through:
    var identity_gates_approved (the dbt asset's `approve_identity_change` run config).
    identity_max_rounds (identity_components) is the fourth gate.
-#}

{#- identity_gates_approved(): true when this run was told to let the error gates through. -#}
{% macro identity_gates_approved() -%}
    {{ return(var('identity_gates_approved', false) in [true, 'true', 'True', 1, '1']) }}
{%- endmacro %}

{#-
    Generic test `identity_profile_size`: fails for every profile holding more than
    var('identity_max_profile_identifiers') identifiers other than anonymous ids. A person has a user
    id, a few emails and a record or two per tool; hundreds mean identifiers that name many people
    were stitched (the giant component of the reference's failure modes). Anonymous ids are not
    counted: one person gathers any number of them, one per browser and cleared cookie.
-#}
{% test identity_profile_size(model) %}

{%- set cap = var('identity_max_profile_identifiers') | int %}
select
    profile_id,
    count(*) as identifiers,
    {{ cap }} as max_identifiers
from {{ model }}
where identifier_type <> 'anonymous_id'
{%- if identity_gates_approved() %}
    and 1 = 0
{%- endif %}
group by profile_id
having count(*) > {{ cap }}

{% endtest %}

{#-
    Generic test `identity_change_share`: fails when this run moved more of the previous run's
    profiles than var('identity_max_change_share') of them (and at least
    var('identity_min_changes_to_gate')): profiles merged into another or split apart, compared
    with identity_graph_previous, the graph as the last run left it. Read by name, not ref(): the
    snapshot is rebuilt downstream of identity_graph, after this test, so at test time it still
    holds the last run's graph. A first run (no snapshot yet) passes. Returns one row with the
    figures.
-#}
{% test identity_change_share(model) %}

{%- set previous = adapter.get_relation(model.database, model.schema, 'identity_graph_previous') if execute else none %}
{%- set share = var('identity_max_change_share') | float %}
{%- set floor = var('identity_min_changes_to_gate') | int %}
{%- if previous is none or identity_gates_approved() %}

select 1 as changed_profiles where 1 = 0

{%- else %}

with moved as (

    select previous.profile_id as previous_profile_id, current_graph.profile_id
    from {{ previous }} as previous
    inner join {{ model }} as current_graph
        on current_graph.identifier_type = previous.identifier_type
        and current_graph.identifier = previous.identifier

),

-- a previous profile whose identifiers went to several profiles (split), or that now shares its
-- profile with another previous profile (merged, the survivor included)
changed as (

    select previous_profile_id
    from moved
    group by previous_profile_id
    having count(distinct profile_id) > 1

    union

    select moved.previous_profile_id
    from moved
    inner join (
        select profile_id
        from moved
        group by profile_id
        having count(distinct previous_profile_id) > 1
    ) as merged
        on merged.profile_id = moved.profile_id

),

figures as (

    select
        (select count(*) from changed) as changed_profiles,
        (select count(distinct profile_id) from {{ previous }}) as previous_profiles

)

select
    changed_profiles,
    previous_profiles,
    {{ share }} as max_change_share,
    {{ floor }} as min_changes_to_gate
from figures
where changed_profiles >= {{ floor }}
    and changed_profiles > {{ share }} * previous_profiles

{%- endif %}

{% endtest %}

{#-
    Generic test `identity_quarantined_share`: returns one row when more than
    var('identity_max_quarantined_share') of the valid identifiers are quarantined. Quarantine
    withholds rather than corrupts (a quarantined identifier stitches nothing), so the project runs it
    as a warning: a rise usually means a new shared value (a support address, a QA account) worth a
    look, or a cap set too tight.
-#}
{% test identity_quarantined_share(model) %}

{%- set share = var('identity_max_quarantined_share') | float %}
with figures as (

    select
        (select count(*) from (
            select distinct identifier_type, identifier from {{ ref('identity_quarantine') }}
        ) as hubs) as quarantined,
        (select count(*) from (
            select distinct identifier_type, identifier from {{ ref('identity_observations') }}
            where reject_reason is null
        ) as valid) as valid_identifiers

)

select
    quarantined,
    valid_identifiers,
    {{ share }} as max_quarantined_share
from figures
where quarantined > {{ share }} * valid_identifiers

{% endtest %}
