{#- One row per campaign per customer contacted or held out: the customer's features on the
    contact day (customer_features at that cutoff: data dated on or before it) and whether they
    ordered in the horizon after it, once that window has closed. -#}
{%- set horizon = var('horizon_days') | int %}
{%- set as_of = sql_date(as_of_date()) %}

with

contacts as (select * from {{ ref('int_campaign_contacts_deduplicated') }}),
customer_features as (select * from {{ ref('customer_features') }}),
order_days as (select customer_id, order_date from {{ ref('int_orders_aggregated_to_customer_days') }}),
shop_contacts as (select * from {{ ref('stg_shop__campaign_contacts') }} where not is_control),

-- the decision sees no campaign it is making: the campaign features leave out the (treated)
-- contacts of the contact day itself, which a treated customer has and a held-out one has not
earlier_contacts as (

    select
        contacts.campaign_id,
        contacts.customer_id,
        count(*) filter (where shop_contacts.contact_date = contacts.contact_date)
            as count_contacts_same_day,
        max(shop_contacts.contact_date) filter (where shop_contacts.contact_date < contacts.contact_date)
            as last_earlier_contact_date

    from contacts
    inner join shop_contacts
        on contacts.customer_id = shop_contacts.customer_id
        and shop_contacts.contact_date <= contacts.contact_date
    group by 1, 2

),

outcomes as (

    select
        contacts.*,
        {{ horizon }} as horizon_days,
        contacts.contact_date + {{ horizon }} as outcome_window_end_date,
        contacts.contact_date + {{ horizon }} <= {{ as_of }} as is_outcome_known,
        exists (
            select 1 from order_days
            where order_days.customer_id = contacts.customer_id
              and order_days.order_date > contacts.contact_date
              and order_days.order_date <= contacts.contact_date + {{ horizon }}
        ) as has_ordered_in_window

    from contacts

),

final as (

    select
        outcomes.campaign_id,
        outcomes.customer_id,
        outcomes.contact_source,
        outcomes.offer_code,
        outcomes.contact_channel,
        outcomes.is_control,
        outcomes.contact_date,
        outcomes.horizon_days,
        outcomes.outcome_window_end_date,
        outcomes.is_outcome_known,
        case when outcomes.is_outcome_known then outcomes.has_ordered_in_window end as is_retained,
        customer_features.customer_id is not null as is_active_at_contact,
        customer_features.* exclude (customer_id, as_of_date) replace (
            customer_features.count_campaign_contacts
                - coalesce(earlier_contacts.count_contacts_same_day, 0) as count_campaign_contacts,
            customer_features.count_campaign_contacts_90d
                - coalesce(earlier_contacts.count_contacts_same_day, 0) as count_campaign_contacts_90d,
            case
                when customer_features.days_since_last_campaign_contact = 0
                    then outcomes.contact_date - earlier_contacts.last_earlier_contact_date
                else customer_features.days_since_last_campaign_contact
            end as days_since_last_campaign_contact
        )

    from outcomes
    left join customer_features
        on outcomes.customer_id = customer_features.customer_id
        and outcomes.contact_date = customer_features.as_of_date
    left join earlier_contacts
        on outcomes.campaign_id = earlier_contacts.campaign_id
        and outcomes.customer_id = earlier_contacts.customer_id

)

select * from final
