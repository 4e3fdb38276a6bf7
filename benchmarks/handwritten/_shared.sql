{#- Statements shared by one_cutoff.sql and all_cutoffs.sql: the small sources at one cutoff
    (a date literal) and the labelled spine. Same definitions as the dbt models. -#}

{% macro order_days(raw, last_day) -%}
{# one row per customer and order day up to last_day: counts, exact money sums, units, and the
   gap to the customer's previous order day #}
with

items_per_order as (
    select order_id, sum(quantity) as count_units
    from {{ raw }}.order_items
    group by 1
),

orders as (
    select
        orders.customer_id,
        cast(orders.order_ts as date) as order_date,
        coalesce(lower(trim(orders.status)) = 'cancelled', false) as is_cancelled,
        coalesce(lower(trim(orders.status)) = 'returned', false) as is_returned,
        nullif(trim(orders.coupon_code), '') is not null as has_coupon,
        coalesce(orders.discount_amount, 0) as discount_amount,
        orders.amount,
        items_per_order.count_units
    from {{ raw }}.orders
    left join items_per_order on orders.order_id = items_per_order.order_id
    where orders.order_ts < {{ last_day }} + 1
)

select
    customer_id,
    order_date,
    count(*) as count_orders,
    count(*) filter (where is_cancelled) as count_cancelled,
    count(*) filter (where is_returned) as count_returned,
    count(*) filter (where has_coupon) as count_coupon,
    count(*) filter (where discount_amount > 0) as count_discounted,
    count(count_units) as count_orders_with_items,
    sum(count_units) as count_units,
    coalesce(sum(amount::decimal(18, 4)) filter (where not is_cancelled), 0) as amount,
    coalesce(sum(discount_amount::decimal(18, 4)) filter (where not is_cancelled), 0) as discount_amount,
    order_date - lag(order_date) over (partition by customer_id order by order_date) as gap
from orders
group by 1, 2
{%- endmacro %}


{% macro order_aggregates(cutoff, windows) -%}
{# per customer, over the order days on or before the cutoff #}
    {%- for days in windows %}
    coalesce(sum(count_orders) filter (where order_date > {{ cutoff }} - {{ days }}), 0) as count_orders_{{ days }}d,
    cast(coalesce(sum(amount) filter (where order_date > {{ cutoff }} - {{ days }}), 0) as double) as amount_{{ days }}d,
    {%- endfor %}
    coalesce(sum(count_orders) filter (where order_date <= {{ cutoff }} - 30 and order_date > {{ cutoff }} - 90), 0)
        as count_orders_prior_60d,
    cast(coalesce(sum(amount) filter (where order_date <= {{ cutoff }} - 30 and order_date > {{ cutoff }} - 90), 0) as double)
        as amount_prior_60d,
    coalesce(sum(count_returned) filter (where order_date > {{ cutoff }} - 365), 0) as count_returned_orders_365d,
    sum(count_orders) as count_orders_lifetime,
    cast(sum(amount) as double) as amount_lifetime,
    {{ cutoff }} - max(order_date) as days_since_last_order,
    {{ cutoff }} - min(order_date) as days_since_first_order,
    count(*) as count_order_days_lifetime,
    avg(gap) as mean_days_between_orders,
    stddev_samp(gap) as stddev_days_between_orders,
    cast(sum(discount_amount) as double) as discount_amount_lifetime,
    sum(count_discounted) as count_discounted_orders_lifetime,
    sum(count_coupon) as count_coupon_orders_lifetime,
    sum(count_cancelled) as count_cancelled_orders_lifetime,
    sum(count_returned) as count_returned_orders_lifetime,
    sum(count_units) / nullif(sum(count_orders_with_items), 0) as avg_units_per_order
{%- endmacro %}


{% macro products_bought(raw, last_day) -%}
{# one row per customer and product bought up to last_day, dated by its first purchase #}
select
    orders.customer_id,
    order_items.product_id,
    min(order_items.category) as product_category,
    min(cast(orders.order_ts as date)) as first_purchased_date
from {{ raw }}.orders
inner join {{ raw }}.order_items on orders.order_id = order_items.order_id
where orders.order_ts < {{ last_day }} + 1
group by 1, 2
{%- endmacro %}


{% macro event_type_counts(event_type) -%}
{# the funnel counts of a group of events; event_type: the (cleaned) type expression #}
{%- for type, column in [('view', 'views'), ('search', 'searches'), ('add_to_cart', 'add_to_cart'),
                         ('checkout', 'checkouts'), ('purchase', 'purchases')] %}
    count(*) filter (where {{ event_type }} = '{{ type }}') as count_{{ column }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro %}


{% macro sessions(raw, first_cutoff, last_cutoff) -%}
{# the sessions any of the cutoffs' 90-day windows can see, at (customer, session, day) grain #}
select
    customer_id,
    coalesce(session_id, customer_id || '@' || cast(cast(event_ts as date) as varchar)) as session_id,
    cast(event_ts as date) as session_date,
{{ event_type_counts('lower(trim(event_type))') }}
from {{ raw }}.events
where event_ts < {{ last_cutoff }} + 1
  and event_ts >= {{ first_cutoff }} - 89
group by 1, 2, 3
{%- endmacro %}


{% macro session_aggregates(cutoff) -%}
{# per customer, over the session rows of the 90 days before the cutoff #}
{%- for days in [7, 30, 90] %}
    count(*) filter (where session_date > {{ cutoff }} - {{ days }}) as count_sessions_{{ days }}d,
{%- endfor %}
    count(*) filter (where session_date <= {{ cutoff }} - 30) as count_sessions_prior_60d,
    count(distinct session_date) filter (where session_date > {{ cutoff }} - 30) as count_active_days_30d,
{%- for days in [30, 90] %}
{%- for column in ['views', 'searches', 'add_to_cart', 'checkouts'] %}
    coalesce(sum(count_{{ column }}) filter (where session_date > {{ cutoff }} - {{ days }}), 0)
        as count_{{ column }}_{{ days }}d,
{%- endfor %}
{%- endfor %}
    sum(count_purchases) as count_purchase_events_90d,
    count(*) filter (where count_add_to_cart > 0) as count_cart_sessions_90d,
    count(*) filter (where count_add_to_cart > 0 and count_purchases = 0) as count_abandoned_cart_sessions_90d
{%- endmacro %}


{% macro reviews(raw, cutoff) -%}
select
    customer_id,
    {{ cutoff }} as as_of_date,
    count(*) as count_reviews,
    count(*) filter (where review_ts >= {{ cutoff }} - 364) as count_reviews_365d,
    avg(rating) as mean_review_rating,
    arg_max(rating, review_ts) as last_review_rating,
    avg((rating <= 2)::int) as share_reviews_low_rating
from {{ raw }}.reviews
where review_ts < {{ cutoff }} + 1
group by 1
{%- endmacro %}


{% macro tickets(raw, cutoff) -%}
select
    customer_id,
    {{ cutoff }} as as_of_date,
    count(*) as count_tickets,
    count(*) filter (where opened_ts >= {{ cutoff }} - 89) as count_tickets_90d,
    count(*) filter (where opened_ts >= {{ cutoff }} - 364) as count_tickets_365d,
    count(*) filter (where not coalesce(resolved_ts < {{ cutoff }} + 1, false)) as count_tickets_unresolved,
    avg(date_diff('hour', opened_ts, resolved_ts)) filter (where resolved_ts < {{ cutoff }} + 1) / 24.0
        as mean_ticket_resolution_days,
    avg(satisfaction) filter (where resolved_ts < {{ cutoff }} + 1) as mean_ticket_satisfaction,
    {{ cutoff }} - max(cast(opened_ts as date)) as days_since_last_ticket
from {{ raw }}.support_tickets
where opened_ts < {{ cutoff }} + 1
group by 1
{%- endmacro %}


{% macro answered_contacts(raw, last_cutoff, response_days) -%}
{# non-control contacts up to the last cutoff, flagged when an order followed within the
    response window #}
select
    contacts.customer_id,
    cast(contacts.contact_ts as date) as contact_date,
    exists (
        select 1 from {{ raw }}.orders
        where orders.customer_id = contacts.customer_id
          and cast(orders.order_ts as date) between cast(contacts.contact_ts as date)
                                                and cast(contacts.contact_ts as date) + {{ response_days }}
    ) as is_answered
from {{ raw }}.campaign_contacts as contacts
where not contacts.is_control and contacts.contact_ts < {{ last_cutoff }} + 1
{%- endmacro %}


{% macro contacts(answered, cutoff, response_days) -%}
select
    customer_id,
    {{ cutoff }} as as_of_date,
    count(*) as count_campaign_contacts,
    count(*) filter (where contact_date > {{ cutoff }} - 90) as count_campaign_contacts_90d,
    {{ cutoff }} - max(contact_date) as days_since_last_campaign_contact,
    count(*) filter (where contact_date <= {{ cutoff }} - {{ response_days }} and is_answered)
        / nullif(count(*) filter (where contact_date <= {{ cutoff }} - {{ response_days }}), 0)
        as campaign_response_rate
from {{ answered }}
where contact_date <= {{ cutoff }}
group by 1
{%- endmacro %}


{% macro labelled_spine(raw, last_day, training_cutoffs, horizon_days) -%}
{# per customer in one pass: an order on or before each training cutoff (active), and one in
    its label window (not churned) #}
with

flags as materialized (
    select
        customer_id,
        {%- for label_cutoff in training_cutoffs %}
        bool_or(order_date <= date '{{ label_cutoff }}') as active_{{ loop.index0 }},
        bool_or(order_date > date '{{ label_cutoff }}'
                and order_date <= date '{{ label_cutoff }}' + {{ horizon_days }}) as ordered_{{ loop.index0 }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (select customer_id, cast(order_ts as date) as order_date from {{ raw }}.orders
          where order_ts < {{ last_day }} + 1)
    group by 1
)

{%- for label_cutoff in training_cutoffs %}
select customer_id, date '{{ label_cutoff }}' as as_of_date, not ordered_{{ loop.index0 }} as is_churned
from flags where active_{{ loop.index0 }}
{{ 'union all' if not loop.last }}
{%- endfor %}
{%- endmacro %}


{% macro derived_features() -%}
{# the mart's ratios and bands, from the aggregates above (a projection: no extra pass) #}
    amount_365d / nullif(cast(count_orders_365d as double), 0) as avg_order_amount_365d,
    count_orders_30d / nullif(cast(count_orders_prior_60d / 2.0 as double), 0) as orders_trend_30d_vs_prior_60d,
    amount_30d / nullif(cast(amount_prior_60d / 2.0 as double), 0) as amount_trend_30d_vs_prior_60d,
    days_since_last_order / nullif(cast(mean_days_between_orders as double), 0) as overdue_ratio,
    discount_amount_lifetime / nullif(cast(amount_lifetime + discount_amount_lifetime as double), 0)
        as discount_share_of_spend,
    count_discounted_orders_lifetime / nullif(cast(count_orders_lifetime as double), 0) as share_orders_discounted,
    count_coupon_orders_lifetime / nullif(cast(count_orders_lifetime as double), 0) as share_orders_with_coupon,
    count_cancelled_orders_lifetime / nullif(cast(count_orders_lifetime as double), 0) as cancellation_rate,
    count_returned_orders_lifetime / nullif(cast(count_orders_lifetime as double), 0) as return_rate,
    count_returned_orders_365d / nullif(cast(count_orders_365d as double), 0) as return_rate_365d,
    count_sessions_30d / nullif(cast(count_sessions_prior_60d / 2.0 as double), 0) as sessions_trend_30d_vs_prior_60d,
    count_abandoned_cart_sessions_90d / nullif(cast(count_cart_sessions_90d as double), 0) as cart_abandonment_rate_90d,
    count_add_to_cart_90d / nullif(cast(count_views_90d as double), 0) as add_to_cart_per_view_90d,
    case
        when customers.age is null then null
        when customers.age < 25 then '18-24'
        when customers.age < 35 then '25-34'
        when customers.age < 45 then '35-44'
        when customers.age < 55 then '45-54'
        when customers.age < 65 then '55-64'
        else '65+'
    end as age_band
{%- endmacro %}
