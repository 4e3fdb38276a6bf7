-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{{ config(materialized='table') }}
{#- A table, not ephemeral: inlined into customer_features, the two large families (orders and
    sessions) kept their aggregation state alive while the mart's joins built theirs, and a full
    build at 16 training cutoffs x 1M customers ran out of DuckDB's 5 GB; stored first, the join
    fits and the whole build is faster. Holds only the cutoffs this run adds to customer_features
    (all of them on a full refresh, the new one on a daily run). -#}
{#- Order features per customer and cutoff: recency, frequency, monetary, gaps, outcomes. A
    cutoff on or after the newest order day (the scoring cutoff of a daily run) takes the
    lifetime totals from int_orders_aggregated_to_customers and aggregates only its last 365
    days; earlier cutoffs (training) aggregate every row up to them. -#}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}
{%- set lifetime_relation = ref('int_orders_aggregated_to_customers') %}
{%- set answered_cutoffs, scanned_cutoffs = cutoffs_on_or_after_newest(
        lifetime_relation, 'last_order_date', cutoffs) %}
{%- set window_columns = order_window_columns() %}

with

order_days as (

    select * from {{ ref('int_orders_aggregated_to_customer_days') }}

),

aggregated as (

    {%- if scanned_cutoffs %}
    {% call(cutoff, cutoff_index) union_per_cutoff(scanned_cutoffs) -%}
    select
        customer_key,
        {{ cutoff }} as as_of_date,
        {%- for name, expression in window_columns %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        {{ order_lifetime_aggregates() }}
    from {{ rows_at_cutoff('order_days', 'order_date', cutoff) }}
    group by customer_key
    {%- endcall %}
    {%- endif %}
    {%- if scanned_cutoffs and answered_cutoffs %}
    union all by name
    {%- endif %}
    {%- if answered_cutoffs or not scanned_cutoffs %}
    {% call(cutoff, cutoff_index) union_per_cutoff(answered_cutoffs) -%}
    select
        lifetime.*,
        {{ cutoff }} as as_of_date,
        {%- for name, expression in window_columns %}
        coalesce(windows.{{ name }}, 0) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ lifetime_relation }} as lifetime
    left join (
        select
            customer_key,
            {%- for name, expression in window_columns %}
            {{ expression }} as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ rows_at_cutoff('order_days', 'order_date', cutoff, 365) }}
        group by customer_key
    ) as windows on lifetime.customer_key = windows.customer_key
    {%- endcall %}
    {%- endif %}

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
