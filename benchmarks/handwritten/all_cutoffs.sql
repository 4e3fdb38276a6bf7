{#- The feature layer's work for a cold start, written by hand: the features of
    customer_features at every cutoff a full build makes (the scoring cutoff and each training
    cutoff: training_examples carries them) and the labelled spine. Shared daily tables are
    built once, then each cutoff aggregates what lies before it. Same definitions as the dbt
    models; no dbt, no tests. bench_floor.py renders and times each step ("-- step: name"). -#}
{%- import '_shared.sql' as shared %}
{%- set last_cutoff = "date '" ~ (cutoffs | last) ~ "'" %}
{%- set first_cutoff = "date '" ~ (cutoffs | first) ~ "'" %}

-- step: order days
create or replace table hand_order_days as
{{ shared.order_days(raw, last_cutoff) }};

-- step: products
create or replace table hand_product_days as
with

bought as (
{{ shared.products_bought(raw, last_cutoff) }}
),

first_in_category as (
    select customer_id, min(first_purchased_date) as first_purchased_date
    from bought
    where product_category is not null
    group by customer_id, product_category
)

{# new products and new categories per customer and day: diversity at a cutoff is a sum #}
select customer_id, first_purchased_date, sum(count_new_products) as count_new_products,
       sum(count_new_categories) as count_new_categories
from (
    select customer_id, first_purchased_date, count(*) as count_new_products, 0 as count_new_categories
    from bought group by 1, 2
    union all
    select customer_id, first_purchased_date, 0, count(*) from first_in_category group by 1, 2
)
group by 1, 2;

-- step: sessions
create or replace table hand_sessions as
{{ shared.sessions(raw, first_cutoff, last_cutoff) }};

-- step: latest session per cutoff
create or replace table hand_last_sessions as
with

{# the latest event day per customer between consecutive cutoffs, in one pass #}
by_bucket as (
    select
        customer_id,
        case
        {%- for cutoff in cutoffs %}
            when event_ts < date '{{ cutoff }}' + 1 then {{ loop.index0 }}
        {%- endfor %}
        end as bucket,
        max(cast(event_ts as date)) as last_event_date
    from {{ raw }}.events
    where event_ts < {{ last_cutoff }} + 1
    group by 1, 2
)

{%- for cutoff in cutoffs %}
select customer_id, date '{{ cutoff }}' as as_of_date,
       date '{{ cutoff }}' - max(last_event_date) as days_since_last_session
from by_bucket where bucket <= {{ loop.index0 }} group by 1
{{ 'union all' if not loop.last }}
{%- endfor %};

-- step: order features per cutoff
create or replace table hand_orders as
{%- for cutoff_day in cutoffs %}
{%- set cutoff = "date '" ~ cutoff_day ~ "'" %}
(
with days as (
    select hand_order_days.*, hand_product_days.count_new_products, hand_product_days.count_new_categories
    from hand_order_days
    left join hand_product_days
        on hand_order_days.customer_id = hand_product_days.customer_id
        and hand_order_days.order_date = hand_product_days.first_purchased_date
    where hand_order_days.order_date <= {{ cutoff }}
)
select
    customer_id,
    {{ cutoff }} as as_of_date,
{{ shared.order_aggregates(cutoff, windows) }},
    coalesce(sum(count_new_products), 0) as count_distinct_products,
    coalesce(sum(count_new_categories), 0) as count_distinct_categories,
    coalesce(sum(count_new_products) filter (where order_date > {{ cutoff }} - 90), 0) as count_new_products_90d
from days
group by 1
)
{{ 'union all' if not loop.last }}
{%- endfor %};

-- step: session features per cutoff
create or replace table hand_session_windows as
{%- for cutoff_day in cutoffs %}
{%- set cutoff = "date '" ~ cutoff_day ~ "'" %}
select
    customer_id,
    {{ cutoff }} as as_of_date,
{{ shared.session_aggregates(cutoff) }}
from hand_sessions
where session_date <= {{ cutoff }} and session_date > {{ cutoff }} - 90
group by 1
{{ 'union all' if not loop.last }}
{%- endfor %};

-- step: reviews, tickets, campaign contacts per cutoff
create or replace table hand_reviews as
{%- for cutoff_day in cutoffs %}
{{ shared.reviews(raw, "date '" ~ cutoff_day ~ "'") }}
{{ 'union all' if not loop.last }}
{%- endfor %};

create or replace table hand_tickets as
{%- for cutoff_day in cutoffs %}
{{ shared.tickets(raw, "date '" ~ cutoff_day ~ "'") }}
{{ 'union all' if not loop.last }}
{%- endfor %};

create or replace table hand_answered as {{ shared.answered_contacts(raw, last_cutoff, response_days) }};

create or replace table hand_contacts as
{%- for cutoff_day in cutoffs %}
{{ shared.contacts('hand_answered', "date '" ~ cutoff_day ~ "'", response_days) }}
{{ 'union all' if not loop.last }}
{%- endfor %};

-- step: features table
create or replace table hand_features as
select
    hand_orders.*,
    hand_session_windows.* exclude (customer_id, as_of_date),
    hand_last_sessions.days_since_last_session,
    hand_reviews.* exclude (customer_id, as_of_date),
    hand_tickets.* exclude (customer_id, as_of_date),
    hand_contacts.* exclude (customer_id, as_of_date),
    hand_orders.as_of_date - cast(customers.signup_ts as date) as days_since_signup,
    customers.region,
    customers.acquisition_channel,
{{ shared.derived_features() }}
from hand_orders
{%- for family in ['hand_session_windows', 'hand_last_sessions', 'hand_reviews', 'hand_tickets', 'hand_contacts'] %}
left join {{ family }}
    on hand_orders.customer_id = {{ family }}.customer_id
    and hand_orders.as_of_date = {{ family }}.as_of_date
{%- endfor %}
left join {{ raw }}.customers
    on hand_orders.customer_id = customers.customer_id
    and coalesce(cast(customers.signup_ts as date) <= hand_orders.as_of_date, true);

-- step: labelled spine
create or replace table hand_spine as
{{ shared.labelled_spine(raw, last_cutoff, training_cutoffs, horizon_days) }};
