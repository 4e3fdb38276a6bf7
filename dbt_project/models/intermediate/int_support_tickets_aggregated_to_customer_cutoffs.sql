-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{#- Support features per customer and cutoff. A ticket resolved after the cutoff was still
    open at the cutoff; its resolution time and satisfaction are not known yet. -#}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}

with

tickets as (

    select {{ customer_key('customer_id') }} as customer_key, * exclude (customer_id)
    from {{ ref('stg_shop__support_tickets') }}

),

aggregated as (

    {% call(cutoff, cutoff_index) union_per_cutoff(cutoffs) -%}
    select
        customer_key,
        {{ cutoff }} as as_of_date,
        count(*) as count_tickets,
        {{ window_sum('1', 90) }} as count_tickets_90d,
        {{ window_sum('1', 365) }} as count_tickets_365d,
        count(*) filter (where not coalesce(resolved_date <= {{ cutoff }}, false))
            as count_tickets_unresolved,
        -- the mean of whole hours (an exact integer sum), then days
        avg(date_diff('hour', opened_at, resolved_at))
            filter (where resolved_date <= {{ cutoff }}) / 24.0 as mean_ticket_resolution_days,
        avg(satisfaction_score) filter (where resolved_date <= {{ cutoff }}) as mean_ticket_satisfaction,
        max(opened_date) as last_ticket_date
    from {{ rows_at_cutoff('tickets', 'opened_date', cutoff) }}
    group by customer_key
    {%- endcall %}

)

select * from aggregated
