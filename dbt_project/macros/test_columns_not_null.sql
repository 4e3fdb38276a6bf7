{#- Generic test: none of the listed columns is NULL. One test (one dbt node, one scan) for
    many columns; failing rows name the column. -#}
{% test columns_not_null(model, columns) %}

{%- for column in columns %}
select '{{ column }}' as failing_column
from {{ model }}
where {{ column }} is null
{{ 'union all' if not loop.last }}
{%- endfor %}

{% endtest %}
