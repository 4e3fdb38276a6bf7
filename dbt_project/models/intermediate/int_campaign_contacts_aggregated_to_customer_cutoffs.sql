{#- Campaign exposure and response per customer and cutoff. A contact counts as answered
    when the customer ordered within the response window, and only once that window has
    closed on or before the cutoff. Control-group rows are holdouts, not exposure. -#}

{%- set response_days = var('campaign_response_days') | int %}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

contacts as (

    select * from {{ ref('stg_shop__campaign_contacts') }}
    where not is_control

),

order_days as (

    select customer_id, order_date from {{ ref('int_orders_aggregated_to_customer_days') }}

),

contacts_answered as (

    select
        contacts.*,
        exists (
            select 1 from order_days
            where order_days.customer_id = contacts.customer_id
              and order_days.order_date >= contacts.contact_date
              and order_days.order_date <= contacts.contact_date + {{ response_days }}
        ) as is_answered

    from contacts

),

contacts_at_cutoffs as (

    select
        cutoffs.cutoff_date,
        contacts_answered.*,
        cutoffs.cutoff_date - contacts_answered.contact_date as days_before_cutoff

    from contacts_answered
    inner join cutoffs on contacts_answered.contact_date <= cutoffs.cutoff_date

),

aggregated as (

    select
        customer_id,
        cutoff_date as as_of_date,
        count(*) as count_campaign_contacts,
        {{ window_sum('1', 90) }} as count_campaign_contacts_90d,
        max(contact_date) as last_campaign_contact_date,
        count(*) filter (where days_before_cutoff >= {{ response_days }}) as count_contacts_settled,
        count(*) filter (where days_before_cutoff >= {{ response_days }} and is_answered)
            as count_contacts_answered

    from contacts_at_cutoffs
    group by 1, 2

)

select * from aggregated
