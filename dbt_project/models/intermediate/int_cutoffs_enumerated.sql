{{ config(materialized='table') }}

{%- set as_of = as_of_date() %}
{%- set training_dates = training_cutoff_dates() %}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

candidates as (

    select {{ sql_date(as_of) }} as cutoff_date, 'scoring' as cutoff_role, null as training_cutoff_index
    {%- for cutoff in training_dates %}
    union all
    select {{ sql_date(cutoff) }}, 'training', {{ loop.index0 }}
    {%- endfor %}

),

-- the days campaigns contacted customers on (before the as-of date, not already a cutoff):
-- features are computed there too, for campaign_outcomes, with the same models and data rules
contact_candidates as (

    select distinct contact_date as cutoff_date, 'contact' as cutoff_role, null as training_cutoff_index
    from {{ ref('int_campaign_contacts_deduplicated') }}
    where contact_date < {{ sql_date(as_of) }}
      and contact_date not in (select cutoff_date from candidates)

),

first_order as (

    select min(order_date) as first_order_date
    from orders
    where order_date <= {{ sql_date(as_of) }}

),

-- the first day each optional source has data: before it, its features are NULL (unknown),
-- after it, a customer without records there has a real zero
source_starts as (

    select
        (select min(order_date) filter (where has_items)
            from {{ ref('int_orders_joined_to_items') }}) as order_items_start_date,
        (select cast(min(occurred_at) as date) from {{ ref('stg_shop__events') }})
            as events_start_date,
        (select cast(min(reviewed_at) as date) from {{ ref('stg_shop__reviews') }})
            as reviews_start_date,
        (select cast(min(opened_at) as date) from {{ ref('stg_shop__support_tickets') }})
            as support_tickets_start_date,
        (select cast(min(contacted_at) as date) from {{ ref('stg_shop__campaign_contacts') }})
            as campaign_contacts_start_date

),

enumerated as (

    select
        candidates.cutoff_date,
        candidates.cutoff_role,
        cast(candidates.training_cutoff_index as integer) as training_cutoff_index,
        {{ var('horizon_days') | int }} as horizon_days,
        {{ sql_date(as_of) }} as run_as_of_date,
        case
            when candidates.cutoff_role = 'training'
                then candidates.cutoff_date + {{ var('horizon_days') | int }}
        end as label_window_end_date,
        coalesce(candidates.training_cutoff_index = 0, false) as is_backtest_cutoff,
        {%- for source in ['order_items', 'events', 'reviews', 'support_tickets', 'campaign_contacts'] %}
        coalesce(source_starts.{{ source }}_start_date <= candidates.cutoff_date, false)
            as has_{{ source }}{{ ',' if not loop.last }}
        {%- endfor %}

    from (select * from candidates union all select * from contact_candidates) as candidates
    cross join first_order
    cross join source_starts
    where candidates.cutoff_role = 'scoring'
        or candidates.cutoff_date >= first_order.first_order_date

)

select * from enumerated
