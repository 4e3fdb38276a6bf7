-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{{ config(materialized='table') }}
{#- A table, not ephemeral: see int_orders_aggregated_to_customer_cutoffs (the mart's memory). -#}
{#- Browsing features per customer and cutoff: sessions, funnel steps, cart abandonment
    over the last 90 days, and the latest session however long ago. The latest session at a
    cutoff on or after the newest stored session day (the scoring cutoff of a daily run) is
    the per-customer latest day of int_sessions_aggregated_to_customers; earlier cutoffs
    (training) take it from one pass over the sessions up to the latest of them. -#}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}
{%- set latest_relation = ref('int_sessions_aggregated_to_customers') %}
{%- set latest_cutoffs, scanned_cutoffs = cutoffs_on_or_after_newest(
        latest_relation, 'last_session_date', cutoffs) %}

with

windowed as (

    {% call(cutoff, cutoff_index) union_per_cutoff(cutoffs) -%}
    select
        customer_key,
        {{ cutoff }} as as_of_date,
        {%- for days in [7, 30, 90] %}
        {{ window_sum('1', days) }} as count_sessions_{{ days }}d,
        {%- endfor %}
        {{ window_sum('1', 60, start_day=30) }} as count_sessions_prior_60d,
        -- distinct days with a session in the last 30: bits of a 30-day mask, no distinct
        cast(bit_count(bit_or(case when days_before_cutoff < 30 then 1::integer << days_before_cutoff
                                   else 0 end)) as hugeint) as count_active_days_30d,
        {%- for days in [30, 90] %}
        {{ window_sum('count_views', days) }} as count_views_{{ days }}d,
        {{ window_sum('count_searches', days) }} as count_searches_{{ days }}d,
        {{ window_sum('count_add_to_cart', days) }} as count_add_to_cart_{{ days }}d,
        {{ window_sum('count_checkouts', days) }} as count_checkouts_{{ days }}d,
        {%- endfor %}
        {{ window_sum('count_purchases', 90) }} as count_purchase_events_90d,
        {{ window_sum('(count_add_to_cart > 0)::int', 90) }} as count_cart_sessions_90d,
        {{ window_sum('(count_add_to_cart > 0 and count_purchases = 0)::int', 90) }}
            as count_abandoned_cart_sessions_90d
    from {{ rows_at_cutoff(ref('int_events_aggregated_to_sessions'), 'session_date', cutoff, 90) }}
    group by customer_key
    {%- endcall %}

),

{%- if scanned_cutoffs %}
last_session_by_bucket as materialized (

    -- the customer's latest session day between consecutive cutoffs, in one pass
    select
        customer_key,
        {{ cutoff_bucket('session_date', scanned_cutoffs) }} as cutoff_bucket,
        max(session_date) as last_session_date
    from {{ ref('int_events_aggregated_to_sessions') }}
    where session_date <= date '{{ scanned_cutoffs | last }}'
    group by 1, 2

),
{%- endif %}

last_sessions as (

    {%- if scanned_cutoffs %}
    {% call(cutoff, cutoff_index) union_per_cutoff(scanned_cutoffs) -%}
    select customer_key, {{ cutoff }} as as_of_date, max(last_session_date) as last_session_date
    from last_session_by_bucket
    where cutoff_bucket <= {{ cutoff_index }}
    group by customer_key
    {%- endcall %}
    {%- endif %}
    {%- if scanned_cutoffs and latest_cutoffs %}
    union all
    {%- endif %}
    {%- if latest_cutoffs or not scanned_cutoffs %}
    {% call(cutoff, cutoff_index) union_per_cutoff(latest_cutoffs) -%}
    select customer_key, {{ cutoff }} as as_of_date, last_session_date
    from {{ latest_relation }}
    {%- endcall %}
    {%- endif %}

),

aggregated as (

    select
        last_sessions.customer_key,
        last_sessions.as_of_date,
        windowed.* exclude (customer_key, as_of_date),
        last_sessions.last_session_date

    from last_sessions
    left join windowed
        on last_sessions.customer_key = windowed.customer_key
        and last_sessions.as_of_date = windowed.as_of_date

)

select * from aggregated
