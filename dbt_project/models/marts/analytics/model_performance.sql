{{ config(materialized='view') }}
{#- Every registered model version's backtest metrics and gate decision: a view over the rows the
    training stage recorded; the publish snapshots it whole. -#}

with

model_performance as (

    select * from {{ ref('stg_churnwatch__model_performance') }}

)

select * from model_performance
