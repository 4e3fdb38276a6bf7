{#- Early warning: customers whose churn probability rose by at least `risk_alert_min_increase`
    since the previous scoring run of the same horizon, with the reasons that appeared and the
    reasons that went away. -#}
{%- set scores_source = ref('stg_churnwatch__churn_scores') %}
{%- set horizon = var('horizon_days') %}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(as_of_date) from " ~ scores_source ~ " where horizon_days = " ~ horizon ~ ")" %}

with

scores as (

    select * from {{ scores_source }}
    where horizon_days = {{ horizon }}

),

this_run as (

    select * from scores where as_of_date = {{ as_of }}

),

previous_run as (

    select * from scores
    where as_of_date = (select max(as_of_date) from scores where as_of_date < {{ as_of }})

),

compared as (

    select
        this_run.customer_id,
        this_run.as_of_date,
        this_run.horizon_days,
        previous_run.as_of_date as previous_as_of_date,
        this_run.churn_probability,
        previous_run.churn_probability as previous_churn_probability,
        this_run.churn_probability - previous_run.churn_probability as probability_increase,
        this_run.risk_tier,
        previous_run.risk_tier as previous_risk_tier,
        this_run.value_at_risk,
        list_filter([this_run.reason_1, this_run.reason_2, this_run.reason_3],
                    lambda r: r is not null) as reasons,
        list_filter([previous_run.reason_1, previous_run.reason_2, previous_run.reason_3],
                    lambda r: r is not null) as previous_reasons,
        this_run.model_version

    from this_run
    inner join previous_run on this_run.customer_id = previous_run.customer_id

),

alerts as (

    select
        * exclude (reasons, previous_reasons),
        list_filter(reasons, lambda r: not list_contains(previous_reasons, r)) as new_reasons,
        list_filter(previous_reasons, lambda r: not list_contains(reasons, r)) as resolved_reasons,
        reasons,
        previous_reasons

    from compared
    where probability_increase >= {{ var('risk_alert_min_increase') }}

)

select * from alerts
