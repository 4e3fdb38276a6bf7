{{ config(materialized='view') }}
{#- Every scoring run's scores: a view, so the rows stay those ml/stages/score.py wrote once,
    never copied again; the publish snapshots the run's (as_of_date, horizon_days) slice. -#}

with

scores as (

    select * from {{ ref('stg_churnwatch__churn_scores') }}

)

select * from scores
