{#- Cutoff dates, computed at compile time so every filter sees a literal date. -#}

{% macro as_of_date() -%}
    {#- the scoring date as a Python date: var as_of_date, else the latest order date -#}
    {%- set raw = var('as_of_date', none) -%}
    {%- if raw is not none and raw | string | trim not in ('', 'None', 'null') -%}
        {{ return(modules.datetime.date.fromisoformat((raw | string)[:10])) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(modules.datetime.date(2000, 1, 1)) }}
    {%- endif -%}
    {%- set result = run_query(
        "select max(cast(order_ts as date)) from " ~ source('shop', 'orders')) -%}
    {%- set latest = result.columns[0].values()[0] -%}
    {{ return(latest if latest is not none else modules.datetime.date(2000, 1, 1)) }}
{%- endmacro %}


{% macro training_cutoff_dates() -%}
    {#- t_k = as_of - horizon - k * step, k = 0..n-1, snapped down to the cutoff grid -#}
    {%- set days = modules.datetime.timedelta -%}
    {%- set step = var('cutoff_step_days') | int -%}
    {%- set latest = as_of_date() - days(days=var('horizon_days') | int) -%}
    {%- set anchor = var('cutoff_grid_anchor', none) -%}
    {%- if anchor is not none and anchor | string | trim not in ('', 'None', 'null') -%}
        {%- set anchor_date = modules.datetime.date.fromisoformat((anchor | string)[:10]) -%}
        {%- set latest = latest - days(days=(latest - anchor_date).days % step) -%}
    {%- endif -%}
    {%- set dates = [] -%}
    {%- for k in range(var('n_training_cutoffs') | int) -%}
        {%- do dates.append(latest - days(days=k * step)) -%}
    {%- endfor -%}
    {{ return(dates) }}
{%- endmacro %}


{% macro sql_date(value) -%}
    date '{{ value.isoformat() }}'
{%- endmacro %}




{% macro cutoff_dates_sql(dates) -%}
    {#- a SQL list of date literals; `null` when empty, so `x in (...)` matches nothing -#}
    {%- if dates | length == 0 -%}
        null
    {%- else -%}
        {%- for d in dates -%}
            date '{{ d }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{% macro pending_cutoff_dates(relation_name, schema='marts', cutoff_role=none, per_horizon=false) -%}
    {#-
        The spine's cutoffs that <schema>.<relation_name> does not hold yet, as a sorted list of
        ISO dates. Features (and labels) at a cutoff depend only on data on or before it (the
        label window on data up to t + horizon <= as-of), so a cutoff once built stays valid while
        that data stays as it was, and an incremental run computes only the new ones (all of them
        on a full refresh). When a re-export rewrites past days, ml/rebuild.py deletes the
        cutoffs (and daily rows) that depend on them before dbt runs: they become pending here.
    -#}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set spine = ref('int_cutoffs_enumerated') -%}
    {%- if adapter.get_relation(database=spine.database, schema=spine.schema,
                                identifier=spine.identifier) is none -%}
        {{ return([]) }}  {#- e.g. `dbt compile` before the spine was ever built -#}
    {%- endif -%}
    {%- set existing = adapter.get_relation(
        database=target.database, schema=schema, identifier=relation_name) -%}
    {%- set query -%}
        select cast(cutoff_date as varchar) from {{ spine }}
        where true
        {%- if cutoff_role %} and cutoff_role = '{{ cutoff_role }}'{% endif %}
        {%- if existing is not none and not flags.FULL_REFRESH %}
          and cutoff_date not in (
              select distinct as_of_date from {{ existing }}
              {%- if per_horizon %}
              where horizon_days = {{ var('horizon_days') | int }}
              {%- endif %}
          )
        {%- endif %}
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{% macro pending_cutoffs(relation_name, schema='marts', cutoff_role=none, per_horizon=false) -%}
    {#- pending_cutoff_dates as a SQL list of dates (`null` when none) -#}
    {{ return(cutoff_dates_sql(pending_cutoff_dates(relation_name, schema, cutoff_role, per_horizon))) }}
{%- endmacro %}


{% macro union_per_cutoff(cutoffs) -%}
    {#-
        `{% call(cutoff, cutoff_index) union_per_cutoff(dates) %} select ... {% endcall %}`: the
        caller's query once per cutoff (a date literal; its index in the sorted list), glued
        with union all. One small aggregation
        per cutoff (group by customer, rows filtered by date) is far cheaper than joining every
        row to every cutoff it falls before and grouping by (customer, cutoff). No cutoffs:
        the query once, returning no rows.
    -#}
    {%- if cutoffs | length == 0 %}
    select * from ({{ caller("date '1900-01-01'", 0) }}) limit 0
    {%- else %}
    {%- for cutoff in cutoffs %}
    ({{ caller("date '" ~ cutoff ~ "'", loop.index0) }})
    {{- '\n    union all' if not loop.last }}
    {%- endfor %}
    {%- endif %}
{%- endmacro %}


{% macro cutoff_bucket(date_column, cutoffs) -%}
    {#- index (0-based) of the first of the sorted cutoffs on or after the date -#}
    {%- if cutoffs | length == 0 %}
    cast(null as integer)
    {%- else %}
    case
    {%- for cutoff in cutoffs %}
        when {{ date_column }} <= date '{{ cutoff }}' then {{ loop.index0 }}
    {%- endfor %}
    end
    {%- endif %}
{%- endmacro %}


{% macro incremental_since(date_column, target_date_column=none, ts_column=none) -%}
    {#-
        Row filter for the incremental daily models: data up to the as-of date and, on an
        incremental run, only the days after the newest one already aggregated (minus a small
        lookback, re-read and replaced by delete+insert on the date). `ts_column`, when given,
        repeats the bound on the raw timestamp so DuckDB can skip row groups.
    -#}
    {{ date_column }} <= {{ sql_date(as_of_date()) }}
    {%- if is_incremental() and execute %}
        {%- set newest = run_query(
            "select max(" ~ (target_date_column or date_column) ~ ") from " ~ this).columns[0].values()[0] -%}
        {%- if newest is not none %}
        {%- set since = newest - modules.datetime.timedelta(days=var('incremental_lookback_days') | int) %}
    and {{ date_column }} > {{ sql_date(since) }}
            {%- if ts_column %}
    and {{ ts_column }} >= timestamp '{{ since + modules.datetime.timedelta(days=1) }}'
            {%- endif %}
        {%- endif %}
    {%- endif %}
{%- endmacro %}


{% macro cutoffs_on_or_after_newest(relation, date_column, cutoffs) -%}
    {#-
        Split the sorted cutoffs into [answered, scanned]: `answered` are on or after the newest
        `date_column` of `relation`, a per-customer table folded over every stored day (the
        scoring cutoff of a daily run), so the table alone answers a lifetime feature there;
        `scanned` need a pass over the rows up to them. All are scanned when the table does not
        exist yet or is empty.
    -#}
    {%- set answered, scanned = [], [] -%}
    {%- set newest = none -%}
    {%- if execute and cutoffs and adapter.get_relation(database=relation.database,
            schema=relation.schema, identifier=relation.identifier) is not none -%}
        {%- set newest = run_query("select cast(max(" ~ date_column ~ ") as varchar) from "
                                   ~ relation).columns[0].values()[0] -%}
    {%- endif -%}
    {%- for cutoff in cutoffs -%}
        {#- ISO dates compare as text -#}
        {%- do (answered if newest is not none and cutoff >= newest else scanned).append(cutoff) -%}
    {%- endfor -%}
    {{ return([answered, scanned]) }}
{%- endmacro %}
