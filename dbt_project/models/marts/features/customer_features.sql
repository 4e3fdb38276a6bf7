{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where as_of_date not in (select cutoff_date from {{ ref('int_cutoffs_enumerated') }})"
) }}
-- depends_on: {{ ref('int_cutoffs_enumerated') }}

with

order_features as (

    select * from {{ ref('int_orders_aggregated_to_customer_cutoffs') }}

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

        ----------  trend: last 30 days against the 60 before, per 30 days
        {{ safe_divide('count_orders_30d', 'count_orders_prior_60d / 2.0') }}
            as orders_trend_30d_vs_prior_60d,
        {{ safe_divide('amount_30d', 'amount_prior_60d / 2.0') }}
            as amount_trend_30d_vs_prior_60d,

        ----------  rhythm: gaps between order days
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
        {{ safe_divide('count_returned_orders_365d', 'count_orders_365d') }}
            as return_rate_365d,

        ----------  basket (NULL without order items)
        {{ safe_divide('count_units_lifetime', 'count_orders_with_items_lifetime') }}
            as avg_units_per_order

    from order_features

)

select * from final
