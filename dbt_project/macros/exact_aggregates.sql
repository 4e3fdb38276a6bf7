{#- Aggregates that give the same bits on every build. DuckDB sums and averages DOUBLEs per
    thread and merges the partial results in whatever order the threads finish, so the last
    bits of a float aggregate vary from run to run (tier M, two identical runs: 146 of 950k
    customers' lifetime amounts, 1,265 gap stddevs). Integer and DECIMAL sums are exact (HUGEINT
    accumulators), so the features below are aggregated in them and turned into DOUBLE once. -#}

{% macro exact_money(expression) -%}
    {#- a money amount as DECIMAL(18, 4) (to 1/10,000 of the currency unit), to sum exactly -#}
    cast({{ expression }} as decimal(18, 4))
{%- endmacro %}


{% macro exact_stddev_samp(column) -%}
    {#- stddev_samp of an integer column from exact integer sums; NULL below two values -#}
    case when count({{ column }}) > 1 then sqrt(
        cast(count({{ column }}) * sum({{ column }}::hugeint * {{ column }})
             - sum({{ column }}::hugeint) * sum({{ column }}::hugeint) as double)
        / (count({{ column }}) * (count({{ column }}) - 1))
    ) end
{%- endmacro %}
