{#- The order aggregates of int_orders_aggregated_to_customer_cutoffs, over rows of
    int_orders_aggregated_to_customer_days grouped by customer: lifetime totals (also stored
    per customer in int_orders_aggregated_to_customers) and trailing windows (need
    days_before_cutoff, see rows_at_cutoff). -#}

{% macro order_lifetime_aggregates() -%}
        any_value(customer_id) as customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        sum(count_orders) as count_orders_lifetime,
        cast(sum({{ exact_money('order_amount') }}) as double) as amount_lifetime,
        count(*) as count_order_days_lifetime,
        avg(days_since_previous_order_day) as mean_days_between_orders,
        {{ exact_stddev_samp('days_since_previous_order_day') }} as stddev_days_between_orders,
        cast(sum({{ exact_money('discount_amount') }}) as double) as discount_amount_lifetime,
        sum(count_discounted_orders) as count_discounted_orders_lifetime,
        sum(count_coupon_orders) as count_coupon_orders_lifetime,
        sum(count_cancelled_orders) as count_cancelled_orders_lifetime,
        sum(count_returned_orders) as count_returned_orders_lifetime,
        sum(count_orders_with_items) as count_orders_with_items_lifetime,
        sum(count_units) as count_units_lifetime,
        sum(count_new_products) as count_distinct_products,
        sum(count_new_categories) as count_distinct_categories
{%- endmacro %}


{% macro order_window_columns() -%}
    {#- (name, expression) of every trailing-window order aggregate; none looks back more
        than 365 days -#}
    {%- set columns = [] -%}
    {%- for days in feature_windows() -%}
        {%- do columns.append(('count_orders_' ~ days ~ 'd', window_sum('count_orders', days))) -%}
        {%- do columns.append(('amount_' ~ days ~ 'd', money_window_sum(days))) -%}
    {%- endfor -%}
    {%- do columns.append(('count_orders_prior_60d', window_sum('count_orders', 60, start_day=30))) -%}
    {%- do columns.append(('amount_prior_60d', money_window_sum(60, start_day=30))) -%}
    {%- do columns.append(('count_cancelled_orders_365d', window_sum('count_cancelled_orders', 365))) -%}
    {%- do columns.append(('count_returned_orders_365d', window_sum('count_returned_orders', 365))) -%}
    {%- do columns.append(('count_new_products_90d', window_sum('count_new_products', 90))) -%}
    {{ return(columns) }}
{%- endmacro %}


{% macro money_window_sum(days, start_day=0) -%}
    {#- window_sum of order_amount, summed exactly (see exact_aggregates.sql) -#}
    cast({{ window_sum(exact_money('order_amount'), days, start_day) }} as double)
{%- endmacro %}
