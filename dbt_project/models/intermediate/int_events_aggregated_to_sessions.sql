{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_date',
    on_schema_change='fail'
) }}
{#- Sessions from events: one row per customer, session and day (a session that crosses
    midnight counts on both days, so a day once aggregated never changes). Incremental on
    session_date; previous_session_date chains to the customer's previous session across runs. -#}

with

events as (

    select * from {{ ref('stg_shop__events') }}
    where {{ incremental_since('event_date', 'session_date', ts_column='occurred_at') }}

),

sessions as (

    select
        customer_id,
        session_id,
        event_date as session_date,
        min(occurred_at) as started_at,
        count(*) as count_events,
        count(*) filter (where event_type = 'view') as count_views,
        count(*) filter (where event_type = 'search') as count_searches,
        count(*) filter (where event_type = 'add_to_cart') as count_add_to_cart,
        count(*) filter (where event_type = 'checkout') as count_checkouts,
        count(*) filter (where event_type = 'purchase') as count_purchases

    from events
    group by 1, 2, 3

),

{% if is_incremental() %}
previous_sessions as (

    select customer_id, max(session_date) as session_date
    from {{ this }}
    where session_date < (select min(session_date) from sessions)
    group by 1

),
{% endif %}

chained as (

    select
        *,
        lag(session_date) over (
            partition by customer_id order by session_date, started_at, session_id
        ) as previous_session_date
    from (
        select *, true as is_new from sessions
        {%- if is_incremental() %}
        union all by name
        select customer_id, session_date, false as is_new from previous_sessions
        {%- endif %}
    )

)

select
    * exclude (is_new),
    -- sessions are chained in time order, so a day's first session follows an earlier day
    coalesce(previous_session_date < session_date, true) as is_first_session_of_day,
    count_add_to_cart > 0 as has_cart,
    count_add_to_cart > 0 and count_purchases = 0 as is_cart_abandoned
from chained
where is_new
