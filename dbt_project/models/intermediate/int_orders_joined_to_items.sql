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
        sum(order_items.quantity) as count_units,
        count(distinct order_items.product_id) as count_distinct_products,
        count(distinct order_items.product_category) as count_distinct_categories

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    group by 1

),

joined as (

    select
        orders.*,
        items_aggregated_to_orders.count_units,
        items_aggregated_to_orders.count_distinct_products,
        items_aggregated_to_orders.count_distinct_categories,
        items_aggregated_to_orders.order_id is not null as has_items

    from orders
    left join items_aggregated_to_orders
        on orders.order_id = items_aggregated_to_orders.order_id

)

select * from joined
