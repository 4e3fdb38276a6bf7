{{ config(materialized='table') }}
{#- Customers who ordered inside the label window (t, t + horizon] of a training cutoff t;
    every other customer active at t churned. Each label window ends on or before the as-of
    date; rebuilt each run (small: one row per customer and cutoff with a later order). -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_role = 'training'

),

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}

),

ordered_in_label_window as (

    select distinct
        order_days.customer_id,
        cutoffs.cutoff_date as as_of_date

    from order_days
    inner join cutoffs
        on order_days.order_date > cutoffs.cutoff_date
        and order_days.order_date <= cutoffs.label_window_end_date
    where order_days.order_date <= cutoffs.run_as_of_date

)

select * from ordered_in_label_window
