{#- Conversions shared by the SaaS staging models (models/staging/<source>/). -#}

{#-
    epoch_to_timestamp(expression): Unix seconds (Stripe, Customer.io) as a UTC timestamp; null stays
    null. DuckDB's `to_timestamp` returns a TIMESTAMPTZ; on Snowflake the instant is given in UTC.
-#}
{% macro epoch_to_timestamp(expression) -%}
    {{ return(adapter.dispatch('epoch_to_timestamp')(expression)) }}
{%- endmacro %}

{% macro default__epoch_to_timestamp(expression) -%}
    to_timestamp({{ expression }})
{%- endmacro %}

{% macro snowflake__epoch_to_timestamp(expression) -%}
    convert_timezone('UTC', to_timestamp_tz({{ expression }}))
{%- endmacro %}

{#- micros_to_units(expression): Google Ads micros (1,000,000 per currency unit) as an exact decimal. -#}
{% macro micros_to_units(expression) -%}
    cast({{ expression }} * 0.000001 as decimal(18, 6))
{%- endmacro %}

{#-
    stripe_amount(amount, currency): a Stripe amount, given in the currency's smallest unit, in whole
    currency units (75000 usd cents -> 750.000). Zero-decimal currencies are already whole units;
    three-decimal ones are in thousandths (https://docs.stripe.com/currencies). A missing currency is
    treated as a two-decimal one. Exact decimal, three places.
-#}
{% macro stripe_amount(amount, currency) -%}
    cast(
        case
            when lower({{ currency }}) in (
                'bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga',
                'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'
            ) then {{ amount }}
            when lower({{ currency }}) in ('bhd', 'jod', 'kwd', 'omr', 'tnd') then {{ amount }} * 0.001
            else {{ amount }} * 0.01
        end
    as decimal(18, 3))
{%- endmacro %}

{#-
    relation_or_empty(relation): the relation, or a subquery with no rows when it does not exist yet
    (a source whose extract has not run, or not on this warehouse). A staging model that selects
    every column of it through `column_or_null` then builds, empty, before the first extract. At parse
    time it renders the relation.
-#}
{% macro relation_or_empty(relation) -%}
    {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        (select 1 as no_rows where 1 = 0)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#-
    dlt_child_table(parent, child): dlt's child table `<parent>__<child>` (a nested list, e.g.
    `insights__actions`) beside `parent`, a source table. Child tables are not dbt sources of their
    own: in Dagster a source is keyed by the dlt asset that writes it (["facebook_ads", "insights"]),
    and dagster-dbt allows one source per key. Reading the child through its parent's `source()` gives
    the model its dependency on that asset.
-#}
{% macro dlt_child_table(parent, child) -%}
    {{ return(parent.incorporate(path={'identifier': parent.identifier ~ '__' ~ child})) }}
{%- endmacro %}

{#-
    subscription_status_rank(status): which Stripe subscription speaks for a customer when there are
    several, lowest first: one that bills (active, then past_due) before a trial, before one that no
    longer bills. Profiles and accounts pick their subscription with the same order.
-#}
{% macro subscription_status_rank(status) -%}
    case {{ status }}
        when 'active' then 1
        when 'past_due' then 2
        when 'trialing' then 3
        when 'unpaid' then 4
        when 'paused' then 5
        when 'incomplete' then 6
        when 'canceled' then 7
        else 8
    end
{%- endmacro %}
