-- The merge log: every time a rebuild of identity_graph moves identifiers from one profile id to
-- another, one row per (previous profile, new profile), appended. It compares the new
-- identity_graph with identity_graph_previous (the graph as this model last saw it, rebuilt right
-- after this model), so each change is logged by the first run that sees it, whatever ran in
-- between; the first run ever logs nothing. `reason`:
--   merged      several previous profiles now map to one (the oldest anchor's id survives, so the
--               surviving profile itself has no row: only the ids that disappeared do)
--   split       a previous profile's identifiers now map to several profiles (a hub quarantined)
--   reanchored  one previous profile maps to a new id on its own: an identifier seen earlier than
--               its anchor arrived late (a CRM record created before the first web visit)
-- Kept across `--full-refresh` (full_refresh: false): a full rebuild of the graph gives the same
-- profile ids, so it logs nothing, and the history stays.
-- A change is one event per comparison: (previous profile, new profile, the previous snapshot it was
-- seen against, identity_graph_previous.snapshot_at). A run that stops before identity_graph_previous
-- is rebuilt compares with the same snapshot again and does not log the change twice; the same pair
-- changing again after a later snapshot (merged, split, merged again) is logged each time. (Keyed on
-- the pair alone, a repeated merge or split was never logged.)

{{ config(materialized='incremental', full_refresh=false, on_schema_change='append_new_columns') }}

{%- set previous = none %}
{%- set previous_has_snapshot = false %}
{%- if execute %}
{%- set previous = adapter.get_relation(this.database, this.schema, 'identity_graph_previous') %}
{%- if previous is not none %}
{#- a snapshot written before snapshot_at existed has none: its changes key on a null snapshot -#}
{%- set previous_has_snapshot = 'snapshot_at' in (adapter.get_columns_in_relation(previous) | map(attribute='name') | map('lower') | list) %}
{%- endif %}
{%- endif %}

with current_graph as (

    select identifier_type, identifier, profile_id
    from {{ ref('identity_graph') }}

),

previous_graph as (

    {%- if previous is not none %}
    select
        identifier_type,
        identifier,
        profile_id,
        {{ 'snapshot_at' if previous_has_snapshot else identity_timestamptz('null') }} as snapshot_at
    from {{ previous }}
    {%- else %}
    -- first run: nothing to compare with
    select identifier_type, identifier, profile_id, {{ identity_timestamptz('null') }} as snapshot_at
    from current_graph
    where 1 = 0
    {%- endif %}

),

moved as (

    select
        previous_graph.profile_id as previous_profile_id,
        current_graph.profile_id,
        previous_graph.snapshot_at,
        previous_graph.identifier_type,
        previous_graph.identifier
    from previous_graph
    inner join current_graph
        on current_graph.identifier_type = previous_graph.identifier_type
        and current_graph.identifier = previous_graph.identifier

),

sources_per_profile as (

    select profile_id, count(distinct previous_profile_id) as previous_profiles
    from moved
    group by profile_id

),

targets_per_previous as (

    select previous_profile_id, count(distinct profile_id) as profiles
    from moved
    group by previous_profile_id

),

changes as (

    select
        moved.previous_profile_id,
        moved.profile_id,
        -- one snapshot per table, so one value per group
        max(moved.snapshot_at) as snapshot_at,
        count(*) as identifiers_moved
    from moved
    where moved.previous_profile_id <> moved.profile_id
    group by moved.previous_profile_id, moved.profile_id

)

select
    {{ identity_timestamptz("'" ~ run_started_at.isoformat() ~ "'") }} as merged_at,
    changes.previous_profile_id,
    changes.profile_id,
    changes.identifiers_moved,
    case
        when targets_per_previous.profiles > 1 then 'split'
        when sources_per_profile.previous_profiles > 1 then 'merged'
        else 'reanchored'
    end as reason,
    changes.snapshot_at as previous_snapshot_at
from changes
inner join sources_per_profile on sources_per_profile.profile_id = changes.profile_id
inner join targets_per_previous on targets_per_previous.previous_profile_id = changes.previous_profile_id
{%- if is_incremental() %}
where not exists (
    select 1
    from {{ this }} as logged
    where logged.previous_profile_id = changes.previous_profile_id
        and logged.profile_id = changes.profile_id
        and (
            logged.previous_snapshot_at = changes.snapshot_at
            or (logged.previous_snapshot_at is null and changes.snapshot_at is null)
        )
)
{%- endif %}
