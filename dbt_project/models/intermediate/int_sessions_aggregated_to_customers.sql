{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='customer_key',
    on_schema_change='fail'
) }}
{#- The latest session day per customer over every session stored so far: the scoring cutoff
    (on or after the newest session day) reads days_since_last_session from here instead of
    grouping all 30M session rows by customer. Incremental: a run reads only the session days
    after the newest one held (minus the lookback) and keeps the later of the two dates per
    customer (a max, so re-reading a day changes nothing). -#}

with

new_sessions as (

    select customer_key, max(session_date) as last_session_date
    from {{ ref('int_events_aggregated_to_sessions') }}
    where {{ incremental_since('session_date', 'last_session_date') }}
    group by 1

)

{%- if is_incremental() %}

select
    new_sessions.customer_key,
    greatest(new_sessions.last_session_date, known.last_session_date) as last_session_date
from new_sessions
left join {{ this }} as known on new_sessions.customer_key = known.customer_key

{%- else %}

select * from new_sessions

{%- endif %}
