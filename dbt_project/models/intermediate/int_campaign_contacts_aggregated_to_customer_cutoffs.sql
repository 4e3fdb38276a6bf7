-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{#- Campaign exposure and response per customer and cutoff. A contact counts as answered
    when the customer ordered within the response window, and only once that window has
    closed on or before the cutoff. Control-group rows are holdouts, not exposure. -#}
{%- set response_days = var('campaign_response_days') | int %}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}

with

contacts as (

    select {{ customer_key('customer_id') }} as customer_key, * exclude (customer_id)
    from {{ ref('stg_shop__campaign_contacts') }}
    where not is_control
      and contact_date <= date '{{ (cutoffs | last) if cutoffs else '1900-01-01' }}'

),

order_days as (

    select customer_key, order_date from {{ ref('int_orders_aggregated_to_customer_days') }}

),

contacts_answered as materialized (

    select
        contacts.*,
        exists (
            select 1 from order_days
            where order_days.customer_key = contacts.customer_key
              and order_days.order_date >= contacts.contact_date
              and order_days.order_date <= contacts.contact_date + {{ response_days }}
        ) as is_answered

    from contacts

),

aggregated as (

    {% call(cutoff, cutoff_index) union_per_cutoff(cutoffs) -%}
    select
        customer_key,
        {{ cutoff }} as as_of_date,
        count(*) as count_campaign_contacts,
        {{ window_sum('1', 90) }} as count_campaign_contacts_90d,
        max(contact_date) as last_campaign_contact_date,
        count(*) filter (where days_before_cutoff >= {{ response_days }}) as count_contacts_settled,
        count(*) filter (where days_before_cutoff >= {{ response_days }} and is_answered)
            as count_contacts_answered
    from {{ rows_at_cutoff('contacts_answered', 'contact_date', cutoff) }}
    group by customer_key
    {%- endcall %}

)

select * from aggregated
