{#- Order features per customer and cutoff: recency, frequency, monetary, gaps, outcomes. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}

),

order_days_before_cutoffs as (

    select
        cutoffs.cutoff_date,
        order_days.*,
        cutoffs.cutoff_date - order_days.order_date as days_before_cutoff

    from order_days
    inner join cutoffs on order_days.order_date <= cutoffs.cutoff_date

),

aggregated as (

    select
        customer_id,
        cutoff_date as as_of_date,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        {%- for days in feature_windows() %}
        {{ window_sum('count_orders', days) }} as count_orders_{{ days }}d,
        {{ window_sum('order_amount', days) }} as amount_{{ days }}d,
        {%- endfor %}
        {{ window_sum('count_orders', 60, start_day=30) }} as count_orders_prior_60d,
        {{ window_sum('order_amount', 60, start_day=30) }} as amount_prior_60d,
        sum(count_orders) as count_orders_lifetime,
        sum(order_amount) as amount_lifetime,
        count(*) as count_order_days_lifetime,
        avg(days_since_previous_order_day) as mean_days_between_orders,
        stddev_samp(days_since_previous_order_day) as stddev_days_between_orders,
        sum(discount_amount) as discount_amount_lifetime,
        sum(count_discounted_orders) as count_discounted_orders_lifetime,
        sum(count_coupon_orders) as count_coupon_orders_lifetime,
        sum(count_cancelled_orders) as count_cancelled_orders_lifetime,
        sum(count_returned_orders) as count_returned_orders_lifetime,
        {{ window_sum('count_cancelled_orders', 365) }} as count_cancelled_orders_365d,
        {{ window_sum('count_returned_orders', 365) }} as count_returned_orders_365d,
        sum(count_orders_with_items) as count_orders_with_items_lifetime,
        sum(count_units) as count_units_lifetime

    from order_days_before_cutoffs
    group by 1, 2

)

select * from aggregated
