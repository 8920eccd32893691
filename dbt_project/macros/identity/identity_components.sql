{#-
    Materialization `identity_components`: connected components of an edge list, computed in the
    warehouse, as a table (identifier, identifier_type, profile_id, first_seen, last_seen).

    The model's SQL selects the edges: identifier_type_a, identifier_a, identifier_type_b,
    identifier_b, first_seen, last_seen. An edge whose two ends are the same identifier (a self edge)
    only makes that identifier a node. Every identifier that appears in an edge gets a row.

    How (reverse-etl-identity-consent.md §3.4 step 6): identifiers are numbered, every node starts as
    its own label, then each round, in one CREATE TABLE AS,
      - label propagation: a node takes the smallest label among its neighbours' parents,
      - hooking: a node's parent takes that label too, so whole trees move at once,
      - pointer jumping (shortcutting): a node takes its parent's parent.
    Labels only decrease, f(v) <= v, and always name a node of the same component. The rounds stop
    when no label changed. At that fixed point every node points at a root: f(v) <= f(f(v)) (jumping)
    and f(f(v)) <= f(v) <= v, so p = f(v) has f(p) = p; and two neighbours u, v have
    f(u) <= f(f(v)) = f(v) and the reverse, so a whole component shares one root, its smallest node.
    Pointer jumping halves the distance to the root each round and hooking merges trees, so the
    rounds grow with the log of the longest chain, not its length (a chain of 1,000 identifiers
    takes about a dozen rounds where plain propagation takes 1,000; `cdp bench identity` measures
    both). No recursive CTE: Snowflake runs out of memory on those at 10M+ identifiers.

    The rounds are capped by config `max_rounds` (default var `identity_max_rounds`). Hitting the cap
    fails the model with a compiler error and leaves the previous table in place: a graph that does
    not converge within the cap is a giant or adversarial component that needs looking at, not a
    silently partial identity.

    profile_id: md5 of '<type>:<identifier>' of the component's anchor, its earliest-seen identifier
    (smallest first_seen, then identifier_type, then identifier; unknown first_seen last). See
    models/identity/_identity.yml for what happens to it when components merge.

    Scratch tables `<model>__cc_*` live next to the model while it builds and are dropped after.
    The run result's message reports identifiers, profiles and rounds (dbt's log, run_results.json).
-#}
{% materialization identity_components, default %}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
    {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
    {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
    {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
    {%- set max_rounds = config.get('max_rounds') or var('identity_max_rounds') -%}
    {%- set scratch = identity_scratch_relations(target_relation) -%}

    {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
    {{ drop_relation_if_exists(preexisting_backup_relation) }}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set started = modules.datetime.datetime.now() -%}
    {%- do identity_components_prepare(sql, scratch) -%}
    {%- set components = identity_components_iterate(scratch, max_rounds) -%}
    {%- set rounds = components.rounds -%}
    {%- set seconds = (modules.datetime.datetime.now() - started).total_seconds() -%}

    {% call statement('main') -%}
        {{ get_create_table_as_sql(False, intermediate_relation, identity_components_result_sql(scratch.nodes, components.labels)) }}
    {%- endcall %}

    {%- set counts = run_query(
        'select count(*), count(distinct profile_id) from ' ~ intermediate_relation
    ).rows[0] -%}
    {%- set message = counts[0] ~ ' identifiers, ' ~ counts[1] ~ ' profiles, converged in ' ~ rounds
        ~ ' rounds (' ~ '%.2f' | format(seconds) ~ ' s)' -%}
    {{ log(this.identifier ~ ': ' ~ message, info=True) }}
    {%- do store_result('main', response=message) -%}

    {% if existing_relation is not none %}
        {% set existing_relation = load_cached_relation(existing_relation) %}
        {% if existing_relation is not none %}
            {{ adapter.rename_relation(existing_relation, backup_relation) }}
        {% endif %}
    {% endif %}
    {{ adapter.rename_relation(intermediate_relation, target_relation) }}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do persist_docs(target_relation, model) %}
    {{ adapter.commit() }}

    {{ drop_relation_if_exists(backup_relation) }}
    {%- do identity_drop_scratch(scratch) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}


{#- The scratch tables of one build, named after the model. -#}
{% macro identity_scratch_relations(relation) -%}
    {%- set names = ['input', 'nodes', 'edges', 'labels_a', 'labels_b'] -%}
    {%- set scratch = {} -%}
    {%- for name in names -%}
        {%- do scratch.update({name: relation.incorporate(
            path={'identifier': relation.identifier ~ '__cc_' ~ name}, type='table')}) -%}
    {%- endfor -%}
    {{ return(scratch) }}
{%- endmacro %}

{% macro identity_drop_scratch(scratch) -%}
    {%- for relation in scratch.values() -%}
        {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- endfor -%}
{%- endmacro %}

{#- identity_scratch_table(relation, sql): (re)create a scratch table from a select. -#}
{% macro identity_scratch_table(relation, sql) -%}
    {{ return(adapter.dispatch('identity_scratch_table')(relation, sql)) }}
{%- endmacro %}

{% macro default__identity_scratch_table(relation, sql) -%}
    create or replace table {{ relation }} as (
        {{ sql }}
    )
{%- endmacro %}

{#- Transient: scratch data needs no Time Travel or Fail-safe storage. -#}
{% macro snowflake__identity_scratch_table(relation, sql) -%}
    create or replace transient table {{ relation }} as (
        {{ sql }}
    )
{%- endmacro %}

{#-
    Nodes numbered by (identifier_type, identifier), with first and last seen over every edge that
    names them; edges between node numbers, in both directions, self edges left out.
-#}
{% macro identity_components_prepare(edges_sql, scratch) -%}
    {%- do run_query(identity_scratch_table(scratch.input, edges_sql)) -%}
    {%- set nodes_sql -%}
        with ends as (
            select identifier_type_a as identifier_type, identifier_a as identifier, first_seen, last_seen
            from {{ scratch.input }}
            union all
            select identifier_type_b, identifier_b, first_seen, last_seen
            from {{ scratch.input }}
        ),
        identifiers as (
            select
                identifier_type,
                identifier,
                min(first_seen) as first_seen,
                max(last_seen) as last_seen
            from ends
            where identifier is not null and identifier_type is not null
            group by identifier_type, identifier
        )
        select
            row_number() over (order by identifier_type, identifier) as node,
            identifier_type,
            identifier,
            first_seen,
            last_seen
        from identifiers
    {%- endset -%}
    {%- do run_query(identity_scratch_table(scratch.nodes, nodes_sql)) -%}
    {%- set edges_sql -%}
        with pairs as (
            select a.node as node_a, b.node as node_b
            from {{ scratch.input }} as input
            inner join {{ scratch.nodes }} as a
                on a.identifier_type = input.identifier_type_a and a.identifier = input.identifier_a
            inner join {{ scratch.nodes }} as b
                on b.identifier_type = input.identifier_type_b and b.identifier = input.identifier_b
            where a.node <> b.node
        )
        select node_a as src, node_b as dst from pairs
        union
        select node_b as src, node_a as dst from pairs
    {%- endset -%}
    {%- do run_query(identity_scratch_table(scratch.edges, edges_sql)) -%}
    {%- do run_query(identity_scratch_table(scratch.labels_a, 'select node, node as label from ' ~ scratch.nodes)) -%}
{%- endmacro %}

{#- One round: labels_from -> labels_to (see the materialization's description). -#}
{% macro identity_components_round_sql(edges, labels_from) -%}
    with parent_label as (
        select labels.node, labels.label as parent, parents.label as grandparent
        from {{ labels_from }} as labels
        inner join {{ labels_from }} as parents on parents.node = labels.label
    ),
    neighbour_min as (
        -- the smallest label among the node's neighbours' parents
        select edges.src as node, min(neighbour.grandparent) as label
        from {{ edges }} as edges
        inner join parent_label as neighbour on neighbour.node = edges.dst
        group by edges.src
    ),
    proposed as (
        -- pointer jumping (the parent's parent) and propagation (the neighbourhood's smallest label)
        select
            parent_label.node,
            parent_label.parent,
            least(parent_label.grandparent, coalesce(neighbour_min.label, parent_label.grandparent)) as label
        from parent_label
        left join neighbour_min on neighbour_min.node = parent_label.node
    ),
    candidates as (
        -- each proposal goes to the node and, hooking, to its parent, which moves the node's whole tree
        -- at once (one pass over `proposed`, so the edge join runs once per round)
        select case when target.side = 1 then proposed.node else proposed.parent end as node, proposed.label
        from proposed
        cross join (select 1 as side union all select 2 as side) as target
    )
    select node, min(label) as label
    from candidates
    group by node
{%- endmacro %}

{#-
    Rounds until no label changes; returns {labels: the table holding the final labels, rounds: how
    many rounds ran (the last one changed nothing)}. Fails loudly past `max_rounds`.
-#}
{% macro identity_components_iterate(scratch, max_rounds) -%}
    {#- the two label tables take turns: each round reads one and writes the other -#}
    {%- set state = namespace(rounds=0, converged=false, current=scratch.labels_a, other=scratch.labels_b) -%}
    {%- for round in range(1, max_rounds + 1) -%}
        {%- do run_query(identity_scratch_table(
            state.other, identity_components_round_sql(scratch.edges, state.current))) -%}
        {%- set changed = run_query(
            'select count(*) from ' ~ state.other ~ ' as new_labels inner join ' ~ state.current
            ~ ' as old_labels on old_labels.node = new_labels.node where new_labels.label <> old_labels.label'
        ).rows[0][0] -%}
        {%- set previous = state.current -%}
        {%- set state.current = state.other -%}
        {%- set state.other = previous -%}
        {%- set state.rounds = round -%}
        {%- if changed == 0 -%}
            {%- set state.converged = true -%}
            {%- break -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not state.converged -%}
        {%- do identity_drop_scratch(scratch) -%}
        {%- do exceptions.raise_compiler_error(
            model.name ~ ': connected components did not converge within ' ~ max_rounds ~ ' rounds '
            ~ '(var identity_max_rounds). Labels were still changing: look for a giant component '
            ~ 'in identity_quarantine / identity_edges, or raise the cap.') -%}
    {%- endif -%}
    {{ return({'labels': state.current, 'rounds': state.rounds}) }}
{%- endmacro %}

{#- The final table: every node with its component's profile id. -#}
{% macro identity_components_result_sql(nodes, labels) -%}
    with labelled as (
        select
            nodes.identifier_type,
            nodes.identifier,
            nodes.first_seen,
            nodes.last_seen,
            labels.label
        from {{ nodes }} as nodes
        inner join {{ labels }} as labels on labels.node = nodes.node
    ),
    ranked as (
        select
            label,
            identifier_type,
            identifier,
            row_number() over (
                partition by label
                order by first_seen asc nulls last, identifier_type, identifier
            ) as position
        from labelled
    ),
    anchors as (
        select
            label,
            {{ identity_profile_id('identifier_type', 'identifier') }} as profile_id
        from ranked
        where position = 1
    )
    select
        labelled.identifier,
        labelled.identifier_type,
        anchors.profile_id,
        {{ identity_timestamptz('labelled.first_seen') }} as first_seen,
        {{ identity_timestamptz('labelled.last_seen') }} as last_seen
    from labelled
    inner join anchors on anchors.label = labelled.label
{%- endmacro %}
