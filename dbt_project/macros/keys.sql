{#- Integer surrogate keys for the big intermediate tables: grouping, joining and storing a
    64-bit integer is several times cheaper than the opaque text identifiers. The marts keep
    the text customer_id; a data test checks that no two identifiers share a key. -#}

{% macro customer_key(column='customer_id') -%}
    hash({{ column }})
{%- endmacro %}
