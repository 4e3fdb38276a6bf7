{% macro relation_exists(relation) -%}
    {#- whether a table or view exists now: a source written by a later stage (the retention
        tables, say) is absent on a warehouse's first build, and reading it would fail -#}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=relation.database, schema=relation.schema,
                                   identifier=relation.identifier) is not none) }}
{%- endmacro %}
