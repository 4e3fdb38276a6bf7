{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_date',
    on_schema_change='fail'
) }}
{#- Order facts: one row per order with its outcome flags and item counts. -#}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    where {{ incremental_since('order_date', ts_column='ordered_at') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}
    {%- if is_incremental() %}
    -- only the lines of this run's orders (a full build aggregates every line once)
    where order_id in (select order_id from orders)
    {%- endif %}

),

items_aggregated_to_orders as (

    select
        order_id,
        count(*) as count_order_lines,
        sum(quantity) as count_units

    from order_items
    group by 1

),

joined as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        orders.order_status,
        orders.order_amount,
        orders.discount_amount,
        orders.is_cancelled,
        orders.is_returned,
        orders.has_coupon,
        orders.has_discount,
        items_aggregated_to_orders.count_order_lines,
        items_aggregated_to_orders.count_units,
        items_aggregated_to_orders.order_id is not null as has_items

    from orders
    left join items_aggregated_to_orders
        on orders.order_id = items_aggregated_to_orders.order_id

)

select * from joined
