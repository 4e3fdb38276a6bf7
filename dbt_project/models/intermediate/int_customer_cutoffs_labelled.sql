{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook="delete from {{ this }} as labels where not exists (select 1 from {{ ref('int_cutoffs_enumerated') }} as spine where spine.cutoff_role = 'training' and spine.cutoff_date = labels.as_of_date and spine.horizon_days = labels.horizon_days)"
) }}
{#- Churn labels: a customer active at training cutoff t (an order on or before t) churned when
    they placed no order in (t, t + horizon]. Each label window ends on or before the as-of
    date, so a cutoff's labels never change: a run labels only cutoffs not labelled yet. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_role = 'training'
      and cutoff_date in ({{ pending_cutoffs(this.identifier, this.schema, 'training', per_horizon=true) }})

),

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}

),

active_customers as (

    select first_orders.customer_id, cutoffs.cutoff_date, cutoffs.label_window_end_date,
           cutoffs.horizon_days
    from (select customer_id, min(order_date) as first_order_date from order_days group by 1)
        as first_orders
    inner join cutoffs on first_orders.first_order_date <= cutoffs.cutoff_date

),

ordered_in_label_window as (

    select distinct order_days.customer_id, cutoffs.cutoff_date
    from order_days
    inner join cutoffs
        on order_days.order_date > cutoffs.cutoff_date
        and order_days.order_date <= cutoffs.label_window_end_date

),

labelled as (

    select
        active_customers.customer_id,
        active_customers.cutoff_date as as_of_date,
        active_customers.horizon_days,
        ordered_in_label_window.customer_id is null as is_churned

    from active_customers
    left join ordered_in_label_window
        on active_customers.customer_id = ordered_in_label_window.customer_id
        and active_customers.cutoff_date = ordered_in_label_window.cutoff_date

)

select * from labelled
