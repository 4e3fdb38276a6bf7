{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='session_date',
    on_schema_change='fail'
) }}

with

sessions as (

    select * from {{ ref('int_events_aggregated_to_sessions') }}
    where {{ incremental_since('session_date') }}

),

aggregated as (

    select
        customer_id,
        session_date,
        count(*) as count_sessions,
        sum(count_events) as count_events,
        sum(count_views) as count_views,
        sum(count_searches) as count_searches,
        sum(count_add_to_cart) as count_add_to_cart,
        sum(count_checkouts) as count_checkouts,
        sum(count_purchases) as count_purchases,
        count(*) filter (where has_cart) as count_cart_sessions,
        count(*) filter (where is_cart_abandoned) as count_abandoned_cart_sessions

    from sessions
    group by 1, 2

)

select * from aggregated
