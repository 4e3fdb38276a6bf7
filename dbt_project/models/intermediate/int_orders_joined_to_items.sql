{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_date',
    on_schema_change='fail'
) }}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    where {{ incremental_since('order_date') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

items_aggregated_to_orders as (

    select
        order_items.order_id,
        count(*) as count_order_lines,
        sum(order_items.quantity) as count_units

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    group by 1

),

joined as (

    select
        orders.*,
        items_aggregated_to_orders.count_order_lines,
        items_aggregated_to_orders.count_units,
        items_aggregated_to_orders.order_id is not null as has_items

    from orders
    left join items_aggregated_to_orders
        on orders.order_id = items_aggregated_to_orders.order_id

)

select * from joined
