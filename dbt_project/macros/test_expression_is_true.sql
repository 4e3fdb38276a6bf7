{#- Generic test: every row satisfies `expression`; on a column, the expression follows the
    column name (`expression: "between 0 and 1"`). NULLs pass, as in a CHECK constraint. -#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce(({{ column_name ~ ' ' if column_name }}{{ expression }}), true)

{% endtest %}
