{#- Browsing features per customer and cutoff: sessions, funnel steps, cart abandonment
    over the last 90 days, and the latest session however long ago. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

sessions as not materialized (

    -- read three times below: scanning the table each time beats materialising a copy
    select * from {{ ref('int_events_aggregated_to_sessions') }}
    where session_date <= {{ sql_date(as_of_date()) }}

),

sessions_before_cutoffs as (

    select
        cutoffs.cutoff_date,
        sessions.*,
        cutoffs.cutoff_date - sessions.session_date as days_before_cutoff

    from sessions
    inner join cutoffs
        on sessions.session_date <= cutoffs.cutoff_date
        and sessions.session_date > cutoffs.cutoff_date - 90

),

windowed as (

    select
        customer_id,
        cutoff_date as as_of_date,
        {%- for days in [7, 30, 90] %}
        {{ window_sum('1', days) }} as count_sessions_{{ days }}d,
        {%- endfor %}
        {{ window_sum('1', 60, start_day=30) }} as count_sessions_prior_60d,
        {{ window_sum('is_first_session_of_day::int', 30) }} as count_active_days_30d,
        {%- for days in [30, 90] %}
        {{ window_sum('count_views', days) }} as count_views_{{ days }}d,
        {{ window_sum('count_searches', days) }} as count_searches_{{ days }}d,
        {{ window_sum('count_add_to_cart', days) }} as count_add_to_cart_{{ days }}d,
        {{ window_sum('count_checkouts', days) }} as count_checkouts_{{ days }}d,
        {%- endfor %}
        {{ window_sum('count_purchases', 90) }} as count_purchase_events_90d,
        {{ window_sum('has_cart::int', 90) }} as count_cart_sessions_90d,
        {{ window_sum('is_cart_abandoned::int', 90) }} as count_abandoned_cart_sessions_90d

    from sessions_before_cutoffs
    group by 1, 2

),

last_sessions as (

    -- the last session day on or before t is the previous one of the first session after t
    select sessions.customer_id, cutoffs.cutoff_date as as_of_date,
           sessions.previous_session_date as last_session_date
    from sessions
    inner join cutoffs
        on sessions.previous_session_date <= cutoffs.cutoff_date
        and sessions.session_date > cutoffs.cutoff_date

    union all

    -- ... or the customer's latest session day, when there is no session after t
    select latest.customer_id, cutoffs.cutoff_date, latest.session_date
    from (select customer_id, max(session_date) as session_date from sessions group by 1) as latest
    inner join cutoffs on latest.session_date <= cutoffs.cutoff_date

),

aggregated as (

    select
        last_sessions.customer_id,
        last_sessions.as_of_date,
        windowed.* exclude (customer_id, as_of_date),
        last_sessions.last_session_date

    from last_sessions
    left join windowed
        on last_sessions.customer_id = windowed.customer_id
        and last_sessions.as_of_date = windowed.as_of_date

)

select * from aggregated
