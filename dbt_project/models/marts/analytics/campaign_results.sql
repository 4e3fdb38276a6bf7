{#- Measured retention campaigns: treated vs control retention within the horizon after contact,
    per campaign and offer (offer_code 'ALL' = the whole campaign). Only campaigns whose whole
    window (contact_date, contact_date + horizon] lies on or before the as-of date are measured.
    lift = treated minus control retention rate; its 95% interval is Agresti–Caffo's (add one
    success and one failure to each group), which keeps its coverage for small or extreme groups. -#}
{%- set horizon = var('horizon_days') %}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(order_date) from " ~ ref('stg_shop__orders') ~ ")" %}

with

contacts as (

    select * from {{ ref('stg_shop__campaign_contacts') }}

),

orders as (

    select customer_id, order_date from {{ ref('stg_shop__orders') }}

),

contacted_customers as (

    select
        campaign_id,
        customer_id,
        any_value(offer_code) as offer_code,
        bool_or(is_control) as is_control,
        min(contact_date) as contact_date

    from contacts
    group by 1, 2

),

measurable_campaigns as (

    select campaign_id, min(contact_date) as campaign_date
    from contacted_customers
    group by 1
    having max(contact_date) + interval {{ horizon }} day <= {{ as_of }}

),

outcomes as (

    {#- retained: any order within the horizon after contact (an exists test, not a join and
        group-by over every order of every contacted customer) -#}
    select
        contacted_customers.campaign_id,
        contacted_customers.customer_id,
        coalesce(contacted_customers.offer_code, 'NONE') as offer_code,
        case when contacted_customers.is_control then 'control' else 'treated' end as contact_group,
        exists (
            select 1 from orders
            where orders.customer_id = contacted_customers.customer_id
              and orders.order_date > contacted_customers.contact_date
              and orders.order_date <= contacted_customers.contact_date + interval {{ horizon }} day
        ) as is_retained

    from contacted_customers
    inner join measurable_campaigns on contacted_customers.campaign_id = measurable_campaigns.campaign_id

),

groups as (

    select campaign_id, offer_code, contact_group, count(*) as customers, count(*) filter (is_retained) as retained
    from outcomes
    group by 1, 2, 3
    union all
    select campaign_id, 'ALL', contact_group, count(*), count(*) filter (is_retained)
    from outcomes
    group by 1, 3

),

compared as (

    select
        groups.*,
        control.customers as control_customers,
        control.retained as control_retained

    from groups
    left join groups as control
        on groups.campaign_id = control.campaign_id
        and groups.offer_code = control.offer_code
        and control.contact_group = 'control'

),

measured as (

    select
        *,
        retained / customers as retention_rate,
        control_retained / control_customers as control_retention_rate,
        (retained + 1) / (customers + 2) as adjusted_rate,
        (control_retained + 1) / (control_customers + 2) as adjusted_control_rate

    from compared

),

final as (

    select
        measured.campaign_id,
        measured.contact_group as "group",
        measured.customers,
        measured.retained,
        measured.retention_rate,
        case when contact_group = 'treated' then retention_rate - control_retention_rate end as lift,
        case when contact_group = 'treated' then adjusted_rate - adjusted_control_rate
            - 1.959964 * sqrt(adjusted_rate * (1 - adjusted_rate) / (customers + 2)
                              + adjusted_control_rate * (1 - adjusted_control_rate) / (control_customers + 2))
        end as ci_low,
        case when contact_group = 'treated' then adjusted_rate - adjusted_control_rate
            + 1.959964 * sqrt(adjusted_rate * (1 - adjusted_rate) / (customers + 2)
                              + adjusted_control_rate * (1 - adjusted_control_rate) / (control_customers + 2))
        end as ci_high,
        measured.offer_code,
        case when contact_group = 'treated' then control_retention_rate end as control_retention_rate,
        case when contact_group = 'treated' then control_customers end as control_customers,
        measurable_campaigns.campaign_date,
        {{ as_of }} as as_of_date,
        {{ horizon }} as horizon_days

    from measured
    inner join measurable_campaigns on measured.campaign_id = measurable_campaigns.campaign_id

)

select * from final
