{#- The feature layer's work at ONE as-of date, written by hand as the fewest DuckDB passes we
    could find: the features of customer_features at {{ as_of }} (same definitions, same
    staging clean-up) and the labelled spine at the training cutoffs. No dbt, no tests, no
    state kept for a later incremental run. bench_floor.py renders and times each step
    ("-- step: name" starts one); tests/dbt/test_dbt_features.py checks the rows against the
    pipeline's. -#}
{%- import '_shared.sql' as shared %}
{%- set cutoff = "date '" ~ as_of ~ "'" %}

-- step: orders
create or replace table hand_orders as
with

days as (
{{ shared.order_days(raw, cutoff) }}
)

select
    customer_id,
{{ shared.order_aggregates(cutoff, windows) }}
from days
group by 1;

-- step: products
create or replace table hand_products as
with

bought as (
{{ shared.products_bought(raw, cutoff) }}
)

select
    customer_id,
    count(*) as count_distinct_products,
    count(distinct product_category) as count_distinct_categories,
    count(*) filter (where first_purchased_date > {{ cutoff }} - 90) as count_new_products_90d
from bought
group by 1;

-- step: sessions
create or replace table hand_sessions as
with

recent_sessions as (
    {# the sessions of the 90 days before the cutoff #}
{{ shared.sessions(raw, cutoff, cutoff) }}
),

older_events as (
    {# before them only the latest event day counts (days_since_last_session) #}
    select customer_id, max(cast(event_ts as date)) as last_event_date
    from {{ raw }}.events
    where event_ts < {{ cutoff }} - 89
    group by 1
),

windows as (
    select
        customer_id,
        max(session_date) as last_session_date,
{{ shared.session_aggregates(cutoff) }}
    from recent_sessions
    group by 1
)

select
    coalesce(windows.customer_id, older_events.customer_id) as customer_id,
    {{ cutoff }} - coalesce(windows.last_session_date, older_events.last_event_date) as days_since_last_session,
    windows.* exclude (customer_id, last_session_date)
from windows
full join older_events on windows.customer_id = older_events.customer_id;

-- step: reviews, tickets, campaign contacts
create or replace table hand_reviews as {{ shared.reviews(raw, cutoff) }};
create or replace table hand_tickets as {{ shared.tickets(raw, cutoff) }};
create or replace table hand_contacts as
{{ shared.contacts('(' ~ shared.answered_contacts(raw, cutoff, response_days) ~ ')', cutoff, response_days) }};

-- step: features table
create or replace table hand_features as
select
    hand_orders.*,
    {{ cutoff }} as as_of_date,
    hand_products.* exclude (customer_id),
    hand_sessions.* exclude (customer_id),
    hand_reviews.* exclude (customer_id, as_of_date),
    hand_tickets.* exclude (customer_id, as_of_date),
    hand_contacts.* exclude (customer_id, as_of_date),
    {{ cutoff }} - cast(customers.signup_ts as date) as days_since_signup,
    customers.region,
    customers.acquisition_channel,
{{ shared.derived_features() }}
from hand_orders
left join hand_products on hand_orders.customer_id = hand_products.customer_id
left join hand_sessions on hand_orders.customer_id = hand_sessions.customer_id
left join hand_reviews on hand_orders.customer_id = hand_reviews.customer_id
left join hand_tickets on hand_orders.customer_id = hand_tickets.customer_id
left join hand_contacts on hand_orders.customer_id = hand_contacts.customer_id
left join {{ raw }}.customers
    on hand_orders.customer_id = customers.customer_id
    and coalesce(cast(customers.signup_ts as date) <= {{ cutoff }}, true);

-- step: labelled spine
create or replace table hand_spine as
{{ shared.labelled_spine(raw, cutoff, training_cutoffs, horizon_days) }};
