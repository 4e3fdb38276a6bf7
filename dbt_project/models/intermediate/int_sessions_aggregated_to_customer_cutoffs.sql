{#- Browsing features per customer and cutoff: sessions, funnel steps, cart abandonment. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

session_days as (

    select * from {{ ref('int_sessions_aggregated_to_customer_days') }}

),

session_days_before_cutoffs as (

    select
        cutoffs.cutoff_date,
        session_days.*,
        cutoffs.cutoff_date - session_days.session_date as days_before_cutoff

    from session_days
    inner join cutoffs
        on session_days.session_date <= cutoffs.cutoff_date
        and session_days.session_date > cutoffs.cutoff_date - 90

),

active_customers as (

    -- customers with an order on or before the cutoff (the feature population)
    select first_orders.customer_id, cutoffs.cutoff_date
    from (
        select customer_id, min(order_date) as first_order_date
        from {{ ref('int_orders_aggregated_to_customer_days') }}
        group by 1
    ) as first_orders
    inner join cutoffs on first_orders.first_order_date <= cutoffs.cutoff_date

),

last_sessions as (

    -- the latest session day on or before the cutoff, however long ago
    select
        active_customers.customer_id,
        active_customers.cutoff_date as as_of_date,
        session_days.session_date as last_session_date

    from active_customers
    asof inner join session_days
        on active_customers.customer_id = session_days.customer_id
        and active_customers.cutoff_date >= session_days.session_date

),

windowed as (

    select
        customer_id,
        cutoff_date as as_of_date,
        {%- for days in [7, 30, 90] %}
        {{ window_sum('count_sessions', days) }} as count_sessions_{{ days }}d,
        {%- endfor %}
        {{ window_sum('count_sessions', 60, start_day=30) }} as count_sessions_prior_60d,
        {{ window_sum('1', 30) }} as count_active_days_30d,
        {%- for days in [30, 90] %}
        {{ window_sum('count_views', days) }} as count_views_{{ days }}d,
        {{ window_sum('count_searches', days) }} as count_searches_{{ days }}d,
        {{ window_sum('count_add_to_cart', days) }} as count_add_to_cart_{{ days }}d,
        {{ window_sum('count_checkouts', days) }} as count_checkouts_{{ days }}d,
        {%- endfor %}
        {{ window_sum('count_purchases', 90) }} as count_purchase_events_90d,
        {{ window_sum('count_cart_sessions', 90) }} as count_cart_sessions_90d,
        {{ window_sum('count_abandoned_cart_sessions', 90) }} as count_abandoned_cart_sessions_90d

    from session_days_before_cutoffs
    group by 1, 2

),

aggregated as (

    select
        coalesce(windowed.customer_id, last_sessions.customer_id) as customer_id,
        coalesce(windowed.as_of_date, last_sessions.as_of_date) as as_of_date,
        windowed.* exclude (customer_id, as_of_date),
        last_sessions.last_session_date

    from windowed
    full outer join last_sessions
        on windowed.customer_id = last_sessions.customer_id
        and windowed.as_of_date = last_sessions.as_of_date

)

select * from aggregated
