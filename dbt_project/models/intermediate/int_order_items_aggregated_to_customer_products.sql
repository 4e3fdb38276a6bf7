{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail'
) }}
{#- One row per customer (integer key) and product ever bought, dated by its first purchase:
    product and category diversity at any cutoff is a count of the rows first bought on or
    before it. -#}

with

orders as (

    select order_id, {{ customer_key('customer_id') }} as customer_key, order_date
    from {{ ref('int_orders_joined_to_items') }}
    where {{ incremental_since('order_date', 'first_purchased_date') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

bought as (

    select
        orders.customer_key,
        order_items.product_id,
        min(order_items.product_category) as product_category,
        min(orders.order_date) as first_purchased_date

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    group by 1, 2

),

{% if is_incremental() %}
known_products as (

    -- what this run's customers bought before (a small slice of the table)
    select customer_key, product_id, product_category
    from {{ this }}
    where customer_key in (select customer_key from bought)

),
{% endif %}

new_products as (

    select * from bought
    {%- if is_incremental() %}
    where not exists (
        select 1 from known_products as known
        where known.customer_key = bought.customer_key
          and known.product_id = bought.product_id
    )
    {%- endif %}

),

flagged as (

    select
        *,
        product_category is not null
        and row_number() over (
            partition by customer_key, product_category
            order by first_purchased_date, product_id
        ) = 1
        {%- if is_incremental() %}
        and not exists (
            select 1 from known_products as known
            where known.customer_key = new_products.customer_key
              and known.product_category = new_products.product_category
        )
        {%- endif %}
            as is_first_in_category

    from new_products

)

select * from flagged
