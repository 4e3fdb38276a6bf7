{{ config(materialized='table') }}

{%- set as_of = as_of_date() %}
{%- set training_dates = training_cutoff_dates() %}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

candidates as (

    select {{ sql_date(as_of) }} as cutoff_date, 'scoring' as cutoff_role, null as training_cutoff_index
    {%- for cutoff in training_dates %}
    union all
    select {{ sql_date(cutoff) }}, 'training', {{ loop.index0 }}
    {%- endfor %}

),

first_order as (

    select min(order_date) as first_order_date
    from orders
    where order_date <= {{ sql_date(as_of) }}

),

enumerated as (

    select
        candidates.cutoff_date,
        candidates.cutoff_role,
        cast(candidates.training_cutoff_index as integer) as training_cutoff_index,
        {{ var('horizon_days') | int }} as horizon_days,
        {{ sql_date(as_of) }} as run_as_of_date,
        case
            when candidates.cutoff_role = 'training'
                then candidates.cutoff_date + {{ var('horizon_days') | int }}
        end as label_window_end_date,
        coalesce(candidates.training_cutoff_index = 0, false) as is_backtest_cutoff

    from candidates
    cross join first_order
    where candidates.cutoff_role = 'scoring'
        or candidates.cutoff_date >= first_order.first_order_date

)

select * from enumerated
