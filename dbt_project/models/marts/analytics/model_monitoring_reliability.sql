{#- The realized reliability table of every closed scoring run: its customers sorted by churn
    probability (ties by customer_id) and cut into 10 equal-mass bins the way
    ml/model/metrics.py calibration_table does (numpy array_split: the first n mod 10 bins hold
    one customer more), each bin's mean prediction against its observed churn rate. model_monitoring's
    ECE is the share-weighted gap summed over these bins. -#}
{%- set n_bins = 10 %}

with

outcomes as (

    select * from {{ ref('int_churn_scores_joined_to_outcomes') }}

),

positioned as (

    select
        *,
        row_number() over scoring_segment - 1 as position,
        count(*) over (partition by as_of_date, horizon_days, model_name, model_version, segment_type, segment)
            as segment_customers

    from outcomes
    window scoring_segment as (
        partition by as_of_date, horizon_days, model_name, model_version, segment_type, segment
        order by churn_probability, customer_id
    )

),

binned as (

    {#- n = q * bins + r: bins 1..r hold q + 1 customers, the rest q -#}
    select
        *,
        1 + case
            when position < (segment_customers % {{ n_bins }}) * (segment_customers // {{ n_bins }} + 1)
                then position // (segment_customers // {{ n_bins }} + 1)
            else (segment_customers % {{ n_bins }})
                + (position - (segment_customers % {{ n_bins }}) * (segment_customers // {{ n_bins }} + 1))
                  // nullif(segment_customers // {{ n_bins }}, 0)
        end as bin_number

    from positioned

),

reliability as (

    select
        as_of_date,
        horizon_days,
        model_name,
        model_version,
        segment_type,
        segment,
        bin_number,
        count(*) as customers,
        count(*) / any_value(segment_customers) as share_of_customers,
        min(churn_probability) as min_churn_probability,
        max(churn_probability) as max_churn_probability,
        avg(churn_probability) as mean_churn_probability,
        avg(is_churned::integer) as observed_churn_rate

    from binned
    group by all

)

select * from reliability
