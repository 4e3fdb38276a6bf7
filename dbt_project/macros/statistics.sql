{% macro exact_stddev_samp(column) -%}
    {#- stddev_samp of an integer column from exact integer sums. DuckDB's stddev_samp merges
        per-thread partial states in whatever order the threads finish, so its last bits vary
        from build to build (1,405 rows of tier M did); these sums are HUGEINTs, exact in any
        order, so the same rows give the same double every time. NULL below two values, as
        stddev_samp. -#}
    case when count({{ column }}) > 1 then sqrt(
        cast(count({{ column }}) * sum({{ column }}::hugeint * {{ column }})
             - sum({{ column }}::hugeint) * sum({{ column }}::hugeint) as double)
        / (count({{ column }}) * (count({{ column }}) - 1))
    ) end
{%- endmacro %}
