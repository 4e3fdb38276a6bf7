{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_date',
    on_schema_change='fail'
) }}
{#- Sessions from events: one row per customer, session and day (a session that crosses
    midnight counts on both days, so a day once aggregated never changes). The one pass over
    events: integer keys and counts only, incremental on session_date. -#}

with

events as (

    select customer_id, session_id, event_type, event_date
    from {{ ref('stg_shop__events') }}
    where {{ incremental_since('event_date', 'session_date', ts_column='occurred_at') }}

),

sessions as (

    select
        {{ customer_key('customer_id') }} as customer_key,
        hash(session_id) as session_key,
        event_date as session_date,
        count(*) as count_events,
        count(*) filter (where event_type = 'view') as count_views,
        count(*) filter (where event_type = 'search') as count_searches,
        count(*) filter (where event_type = 'add_to_cart') as count_add_to_cart,
        count(*) filter (where event_type = 'checkout') as count_checkouts,
        count(*) filter (where event_type = 'purchase') as count_purchases

    from events
    group by 1, 2, 3

)

select * from sessions
