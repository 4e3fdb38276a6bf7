{#- Generic test: every row satisfies each of `expressions` (NULLs pass, as in a CHECK
    constraint). One test for many row invariants; failing rows name the expression. -#}
{% test expressions_are_true(model, expressions) %}

{%- for expression in expressions %}
select {{ loop.index }} as failing_expression
from {{ model }}
where not coalesce(({{ expression }}), true)
{{ 'union all' if not loop.last }}
{%- endfor %}

{% endtest %}
