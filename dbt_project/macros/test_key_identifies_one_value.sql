{#- Generic test: the surrogate key column maps to a single `value_column` (no two customer_ids
    share a hash key). With `since_expression`, only keys of rows matching it are checked
    (against all their rows), so a daily run checks its own new rows cheaply. -#}
{% test key_identifies_one_value(model, column_name, value_column, since_expression=none) %}

select {{ column_name }}, count(distinct {{ value_column }}) as count_values
from {{ model }}
{%- if since_expression %}
where {{ column_name }} in (select {{ column_name }} from {{ model }} where {{ since_expression }})
{%- endif %}
group by 1
having count(distinct {{ value_column }}) > 1

{% endtest %}
