{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where as_of_date not in (select cutoff_date from {{ ref('int_cutoffs_enumerated') }})"
) }}
{#- Features of an optional source are NULL at cutoffs before that source has any data, and
    a real zero for a customer without records once it has. -#}
{%- set session_columns = [
    'count_sessions_7d', 'count_sessions_30d', 'count_sessions_90d', 'count_active_days_30d',
    'count_views_30d', 'count_views_90d', 'count_searches_30d', 'count_searches_90d',
    'count_add_to_cart_30d', 'count_add_to_cart_90d', 'count_checkouts_30d',
    'count_checkouts_90d', 'count_purchase_events_90d'] %}
{%- set review_columns = ['count_reviews', 'count_reviews_365d'] %}
{%- set ticket_columns = ['count_tickets', 'count_tickets_90d', 'count_tickets_365d',
                          'count_tickets_unresolved'] %}
{%- set contact_columns = ['count_campaign_contacts', 'count_campaign_contacts_90d'] %}

with

cutoffs as (select * from {{ ref('int_cutoffs_enumerated') }}),
order_features as (select * from {{ ref('int_orders_aggregated_to_customer_cutoffs') }}),
session_features as (select * from {{ ref('int_sessions_aggregated_to_customer_cutoffs') }}),
review_features as (select * from {{ ref('int_reviews_aggregated_to_customer_cutoffs') }}),
ticket_features as (select * from {{ ref('int_support_tickets_aggregated_to_customer_cutoffs') }}),
contact_features as (select * from {{ ref('int_campaign_contacts_aggregated_to_customer_cutoffs') }}),
customers as (select * from {{ ref('stg_shop__customers') }}),

joined as (

    select
        order_features.* exclude (customer_key, avg_units_per_order, count_distinct_products,
                                  count_distinct_categories, count_new_products_90d),

        ----------  basket and assortment (order items)
        {%- for column in ['avg_units_per_order', 'count_distinct_products',
                           'count_distinct_categories', 'count_new_products_90d'] %}
        case when cutoffs.has_order_items then order_features.{{ column }} end as {{ column }},
        {%- endfor %}

        ----------  browsing (events)
        {%- for column in session_columns %}
        {{ zero_if_present('cutoffs.has_events', 'session_features.' ~ column) }} as {{ column }},
        {%- endfor %}
        {{ zero_if_present('cutoffs.has_events', safe_divide(
            'session_features.count_sessions_30d', 'session_features.count_sessions_prior_60d / 2.0')) }}
            as sessions_trend_30d_vs_prior_60d,
        {{ safe_divide('session_features.count_abandoned_cart_sessions_90d',
                       'session_features.count_cart_sessions_90d') }} as cart_abandonment_rate_90d,
        {{ safe_divide('session_features.count_add_to_cart_90d', 'session_features.count_views_90d') }}
            as add_to_cart_per_view_90d,
        order_features.as_of_date - session_features.last_session_date as days_since_last_session,

        ----------  reviews
        {%- for column in review_columns %}
        {{ zero_if_present('cutoffs.has_reviews', 'review_features.' ~ column) }} as {{ column }},
        {%- endfor %}
        review_features.mean_review_rating,
        review_features.last_review_rating,
        review_features.share_reviews_low_rating,

        ----------  support
        {%- for column in ticket_columns %}
        {{ zero_if_present('cutoffs.has_support_tickets', 'ticket_features.' ~ column) }} as {{ column }},
        {%- endfor %}
        ticket_features.mean_ticket_resolution_days,
        ticket_features.mean_ticket_satisfaction,
        order_features.as_of_date - ticket_features.last_ticket_date as days_since_last_ticket,

        ----------  campaigns
        {%- for column in contact_columns %}
        {{ zero_if_present('cutoffs.has_campaign_contacts', 'contact_features.' ~ column) }} as {{ column }},
        {%- endfor %}
        order_features.as_of_date - contact_features.last_campaign_contact_date
            as days_since_last_campaign_contact,
        {{ safe_divide('contact_features.count_contacts_answered', 'contact_features.count_contacts_settled') }}
            as campaign_response_rate,

        ----------  customer attributes (when the customers source has them)
        order_features.as_of_date - customers.signup_date as days_since_signup,
        customers.region,
        customers.age_band,
        customers.acquisition_channel

    from order_features
    inner join cutoffs on order_features.as_of_date = cutoffs.cutoff_date
    {%- for family in ['session_features', 'review_features', 'ticket_features', 'contact_features'] %}
    left join {{ family }}
        on order_features.customer_key = {{ family }}.customer_key
        and order_features.as_of_date = {{ family }}.as_of_date
    {%- endfor %}
    left join customers
        on order_features.customer_id = customers.customer_id
        and coalesce(customers.signup_date <= order_features.as_of_date, true)

)

select * from joined
