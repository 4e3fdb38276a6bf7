{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_date',
    on_schema_change='fail'
) }}
{#- One row per session and day (a session crossing midnight counts on both days, so a day
    once aggregated never changes). -#}

with

events as (

    select * from {{ ref('stg_shop__events') }}
    where {{ incremental_since('event_date', 'session_date') }}

),

sessions as (

    select
        customer_id,
        session_id,
        event_date as session_date,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as count_events,
        count(*) filter (where event_type = 'view') as count_views,
        count(*) filter (where event_type = 'search') as count_searches,
        count(*) filter (where event_type = 'add_to_cart') as count_add_to_cart,
        count(*) filter (where event_type = 'checkout') as count_checkouts,
        count(*) filter (where event_type = 'purchase') as count_purchases

    from events
    group by 1, 2, 3

),

flagged as (

    select
        *,
        count_add_to_cart > 0 as has_cart,
        count_add_to_cart > 0 and count_purchases = 0 as is_cart_abandoned

    from sessions

)

select * from flagged
