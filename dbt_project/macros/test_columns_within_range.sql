{#- Generic test: every listed column lies within [min_value, max_value] (either bound may be
    omitted); NULLs pass. One scan checks many columns; failing rows name the column. -#}
{% test columns_within_range(model, columns, min_value=none, max_value=none) %}

{%- for column in columns %}
select '{{ column }}' as failing_column, cast({{ column }} as double) as value
from {{ model }}
where {{ column }} < {{ min_value if min_value is not none else "'-infinity'::double" }}
   or {{ column }} > {{ max_value if max_value is not none else "'infinity'::double" }}
{{ 'union all' if not loop.last }}
{%- endfor %}

{% endtest %}
