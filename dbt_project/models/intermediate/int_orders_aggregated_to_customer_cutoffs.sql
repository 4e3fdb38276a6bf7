-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{#- Order features per customer and cutoff: recency, frequency, monetary, gaps, outcomes. -#}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}

with

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}

),

aggregated as (

    {% call(cutoff, cutoff_index) union_per_cutoff(cutoffs) -%}
    select
        customer_key,
        any_value(customer_id) as customer_id,
        {{ cutoff }} as as_of_date,
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
        sum(count_units) as count_units_lifetime,
        sum(count_new_products) as count_distinct_products,
        sum(count_new_categories) as count_distinct_categories,
        {{ window_sum('count_new_products', 90) }} as count_new_products_90d
    from {{ rows_at_cutoff('order_days', 'order_date', cutoff) }}
    group by customer_key
    {%- endcall %}

),

final as (

    select
        customer_id,
        as_of_date,

        ----------  recency and tenure
        as_of_date - last_order_date as days_since_last_order,
        as_of_date - first_order_date as days_since_first_order,

        ----------  frequency and monetary over trailing windows
        {%- for days in feature_windows() %}
        count_orders_{{ days }}d,
        amount_{{ days }}d,
        {%- endfor %}
        count_orders_lifetime,
        amount_lifetime,
        {{ safe_divide('amount_365d', 'count_orders_365d') }} as avg_order_amount_365d,

        ----------  trend: last 30 days against the 60 before, per 30 days (NULL: no baseline)
        {{ safe_divide('count_orders_30d', 'count_orders_prior_60d / 2.0') }}
            as orders_trend_30d_vs_prior_60d,
        {{ safe_divide('amount_30d', 'amount_prior_60d / 2.0') }}
            as amount_trend_30d_vs_prior_60d,

        ----------  rhythm: gaps between order days (NULL: fewer than two order days)
        count_order_days_lifetime,
        mean_days_between_orders,
        stddev_days_between_orders,
        {{ safe_divide('as_of_date - last_order_date', 'mean_days_between_orders') }}
            as overdue_ratio,

        ----------  discounts, cancellations, returns
        {{ safe_divide('discount_amount_lifetime', 'amount_lifetime + discount_amount_lifetime') }}
            as discount_share_of_spend,
        {{ safe_divide('count_discounted_orders_lifetime', 'count_orders_lifetime') }}
            as share_orders_discounted,
        {{ safe_divide('count_coupon_orders_lifetime', 'count_orders_lifetime') }}
            as share_orders_with_coupon,
        {{ safe_divide('count_cancelled_orders_lifetime', 'count_orders_lifetime') }}
            as cancellation_rate,
        {{ safe_divide('count_returned_orders_lifetime', 'count_orders_lifetime') }}
            as return_rate,
        {{ safe_divide('count_returned_orders_365d', 'count_orders_365d') }} as return_rate_365d,

        ----------  basket and assortment (need order items)
        {{ safe_divide('count_units_lifetime', 'count_orders_with_items_lifetime') }}
            as avg_units_per_order,
        count_distinct_products,
        count_distinct_categories,
        count_new_products_90d,

        customer_key

    from aggregated

)

select * from final
