{{ config(materialized='view') }}
{#- The run's customers with risk tier, value tier and RFM segment (rules: ml/model/segments.py); a view:
    the rows are retention.customer_segments, written once by the policy step, not copied again. -#}
{%- set segments = ref('stg_churnwatch__customer_segments') %}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(as_of_date) from " ~ segments ~ ")" %}

with

segments as (

    select * from {{ segments }}

),

this_run as (

    select * from segments
    where as_of_date = {{ as_of }}
      and horizon_days = {{ var('horizon_days') }}

)

select * from this_run
