{#- Helpers for features over trailing windows that end at the cutoff (day 0 = the cutoff). -#}

{% macro feature_windows() -%}
    {{ return([7, 30, 90, 180, 365]) }}
{%- endmacro %}


{% macro window_sum(expression, days, start_day=0) -%}
    {#- sum over the days (cutoff - start_day - days, cutoff - start_day]; 0 when none
        (rows are already on or before the cutoff) -#}
    coalesce(sum({{ expression }}) filter (
        where {% if start_day > 0 %}days_before_cutoff >= {{ start_day }} and {% endif -%}
              days_before_cutoff < {{ start_day + days }}
    ), 0)
{%- endmacro %}


{% macro safe_divide(numerator, denominator) -%}
    ({{ numerator }}) / nullif(cast({{ denominator }} as double), 0)
{%- endmacro %}


{% macro zero_if_present(source_flag, expression) -%}
    {#- a count from an optional source: 0 when the source has data but the customer has no
        rows, NULL when the source has no data yet at the cutoff -#}
    case when {{ source_flag }} then coalesce({{ expression }}, 0) end
{%- endmacro %}


{% macro rows_at_cutoff(relation, date_column, cutoff, window_days=none) -%}
    {#- the rows dated on or before the cutoff (within window_days of it, when given), with
        days_before_cutoff for window_sum: the input of one branch of union_per_cutoff -#}
    (
        select *, {{ cutoff }} - {{ date_column }} as days_before_cutoff
        from {{ relation }}
        where {{ date_column }} <= {{ cutoff }}
        {%- if window_days %} and {{ date_column }} > {{ cutoff }} - {{ window_days }}{% endif %}
    )
{%- endmacro %}
