{#- What happened to every scored customer once the scoring run's horizon has closed: churned =
    no order in (as_of_date, as_of_date + horizon_days], the training labels' definition. Only
    scoring runs whose window ends on or before the run's as-of date (the data's last order date
    when unset) are here. Each score appears once per segment it belongs to: 'all' and its risk
    tier, so the monitoring marts aggregate every segment the same way. -#}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(order_date) from " ~ ref('stg_shop__orders') ~ ")" %}

with

scores as (

    select * from {{ ref('stg_churnwatch__churn_scores') }}
    where as_of_date + to_days(horizon_days::integer) <= {{ as_of }}

),

orders as (

    select customer_id, order_date from {{ ref('stg_shop__orders') }}

),

outcomes as (

    select
        scores.as_of_date,
        scores.horizon_days,
        scores.model_name,
        scores.model_version,
        scores.customer_id,
        scores.risk_tier,
        scores.churn_probability,
        not exists (
            select 1 from orders
            where orders.customer_id = scores.customer_id
              and orders.order_date > scores.as_of_date
              and orders.order_date <= scores.as_of_date + to_days(scores.horizon_days::integer)
        ) as is_churned

    from scores

),

segmented as (

    select *, 'all' as segment_type, 'all' as segment from outcomes
    union all
    select *, 'risk_tier' as segment_type, risk_tier as segment from outcomes

)

select * exclude (risk_tier) from segmented
