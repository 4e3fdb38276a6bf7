{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='customer_key',
    on_schema_change='fail'
) }}
{#- Lifetime order totals per customer over every stored order day: the scoring cutoff (on or
    after the newest order day) reads its lifetime features from here and aggregates only the
    last 365 days for its windows. Incremental: the customers with order days in this run's
    batch (the days after the newest one held, minus the lookback) are aggregated again over
    all their days and replaced; the others keep their row. -#}

with

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}
    where order_date <= {{ sql_date(as_of_date()) }}
    {%- if is_incremental() %}
      and customer_key in (
          select customer_key from {{ ref('int_orders_aggregated_to_customer_days') }}
          where {{ incremental_since('order_date', 'last_order_date') }}
      )
    {%- endif %}

),

aggregated as (

    select
        customer_key,
        {{ order_lifetime_aggregates() }}
    from order_days
    group by customer_key

)

select * from aggregated
