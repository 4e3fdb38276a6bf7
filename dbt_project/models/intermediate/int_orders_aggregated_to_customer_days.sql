{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_date',
    on_schema_change='fail'
) }}

with

orders as (

    select *, {{ customer_key('customer_id') }} as customer_key
    from {{ ref('int_orders_joined_to_items') }}
    where {{ incremental_since('order_date') }}

),

first_purchases as (

    select
        customer_key,
        first_purchased_date as order_date,
        count(*) as count_new_products,
        count(*) filter (where is_first_in_category) as count_new_categories

    from {{ ref('int_order_items_aggregated_to_customer_products') }}
    where first_purchased_date in (select distinct order_date from orders)
    group by 1, 2

),

aggregated_orders as (

    select
        customer_key,
        order_date,
        any_value(customer_id) as customer_id,
        count(*) as count_orders,
        count(*) filter (where is_cancelled) as count_cancelled_orders,
        count(*) filter (where is_returned) as count_returned_orders,
        count(*) filter (where has_coupon) as count_coupon_orders,
        count(*) filter (where has_discount) as count_discounted_orders,
        cast(coalesce(sum({{ exact_money('order_amount') }}) filter (where not is_cancelled), 0) as double)
            as order_amount,
        cast(coalesce(sum({{ exact_money('discount_amount') }}) filter (where not is_cancelled), 0) as double)
            as discount_amount,
        count(*) filter (where has_items) as count_orders_with_items,
        sum(count_units) as count_units

    from orders
    group by 1, 2

),

aggregated as (

    select
        aggregated_orders.*,
        coalesce(first_purchases.count_new_products, 0) as count_new_products,
        coalesce(first_purchases.count_new_categories, 0) as count_new_categories

    from aggregated_orders
    left join first_purchases
        on aggregated_orders.customer_key = first_purchases.customer_key
        and aggregated_orders.order_date = first_purchases.order_date

),

{% if is_incremental() %}
previous_order_days as (

    -- the latest order day already aggregated before this batch, to chain the gaps
    select customer_key, max(order_date) as order_date
    from {{ this }}
    where order_date < (select min(order_date) from aggregated)
    group by 1

),
{% endif %}

chained as (

    select
        *,
        lag(order_date) over (partition by customer_key order by order_date) as previous_order_date
    from (
        select *, true as is_new from aggregated
        {%- if is_incremental() %}
        union all by name
        select customer_key, order_date, false as is_new from previous_order_days
        {%- endif %}
    )

)

select
    * exclude (is_new),
    order_date - previous_order_date as days_since_previous_order_day
from chained
where is_new
