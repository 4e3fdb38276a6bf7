{#- Support features per customer and cutoff. A ticket resolved after the cutoff was still
    open at the cutoff; its resolution time and satisfaction are not known yet. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

tickets as (

    select * from {{ ref('stg_shop__support_tickets') }}

),

tickets_at_cutoffs as (

    select
        cutoffs.cutoff_date,
        tickets.*,
        cutoffs.cutoff_date - tickets.opened_date as days_before_cutoff,
        coalesce(tickets.resolved_date <= cutoffs.cutoff_date, false) as is_resolved_by_cutoff

    from tickets
    inner join cutoffs on tickets.opened_date <= cutoffs.cutoff_date

),

aggregated as (

    select
        customer_id,
        cutoff_date as as_of_date,
        count(*) as count_tickets,
        {{ window_sum('1', 90) }} as count_tickets_90d,
        {{ window_sum('1', 365) }} as count_tickets_365d,
        count(*) filter (where not is_resolved_by_cutoff) as count_tickets_unresolved,
        avg(date_diff('hour', opened_at, resolved_at) / 24.0)
            filter (where is_resolved_by_cutoff) as mean_ticket_resolution_days,
        avg(satisfaction_score) filter (where is_resolved_by_cutoff) as mean_ticket_satisfaction,
        max(opened_date) as last_ticket_date

    from tickets_at_cutoffs
    group by 1, 2

)

select * from aggregated
