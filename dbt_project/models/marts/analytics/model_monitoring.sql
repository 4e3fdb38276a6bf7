{#- Realized performance of every closed scoring run against what actually happened, per segment,
    with the definitions of ml/model/metrics.py (checked equal by tests/dbt/test_model_monitoring.py):
    AUC by the rank (Mann–Whitney) formula with tied scores' ranks averaged; PR-AUC as average
    precision (precision at each distinct score, weighted by the recall it adds); Brier; ECE from
    model_monitoring_reliability's equal-mass bins; lift and recall in the top k = round-half-even(n
    × share) customers by score, customers tied at the k-th score sharing the remaining places
    evenly. AUC and PR-AUC are NULL when a segment has one outcome only. -#}
{%- set scoring_segment = "partition by as_of_date, horizon_days, model_name, model_version, segment_type, segment" %}

with

outcomes as (

    select * from {{ ref('int_churn_scores_joined_to_outcomes') }}

),

reliability as (

    select * from {{ ref('model_monitoring_reliability') }}

),

ranked as (

    select
        *,
        is_churned::integer as churned,
        count(*) over ({{ scoring_segment }}) as segment_customers,
        count(*) filter (is_churned) over ({{ scoring_segment }}) as segment_churned,
        -- average rank of tied scores (ascending), for the AUC
        rank() over ({{ scoring_segment }} order by churn_probability)
            + (count(*) over ({{ scoring_segment }}, churn_probability) - 1) / 2 as average_rank,
        -- precision at this score as a threshold (every score at least this high), for the PR-AUC
        count(*) filter (is_churned) over ({{ scoring_segment }} order by churn_probability desc)
            / count(*) over ({{ scoring_segment }} order by churn_probability desc) as precision_at_score,
        row_number() over ({{ scoring_segment }} order by churn_probability desc, customer_id) as position_desc

    from outcomes

),

top_shares as (

    select
        *,
        greatest(1, round_even(segment_customers::double * 0.1::double, 0))::bigint as top_10pct_customers,
        greatest(1, round_even(segment_customers::double * 0.2::double, 0))::bigint as top_20pct_customers

    from ranked

),

thresholds as (

    {#- the k-th highest score of each top share -#}
    select
        *,
        max(case when position_desc = top_10pct_customers then churn_probability end)
            over ({{ scoring_segment }})
            as top_10pct_threshold,
        max(case when position_desc = top_20pct_customers then churn_probability end)
            over ({{ scoring_segment }})
            as top_20pct_threshold

    from top_shares

),

aggregated as (

    select
        as_of_date,
        horizon_days,
        model_name,
        model_version,
        segment_type,
        segment,
        any_value(segment_customers) as customers,
        any_value(segment_churned) as churned_customers,
        avg(churned) as churn_rate,
        avg(churn_probability) as mean_churn_probability,
        sum(average_rank) filter (is_churned) as churned_rank_sum,
        sum(precision_at_score) filter (is_churned) as churned_precision_sum,
        avg((churn_probability - churned) ^ 2) as brier,
        {%- for pct in (10, 20) %}
        any_value(top_{{ pct }}pct_customers) as top_{{ pct }}pct_customers,
        coalesce(sum(churned) filter (churn_probability > top_{{ pct }}pct_threshold), 0)
            + (any_value(top_{{ pct }}pct_customers) - count(*) filter (churn_probability > top_{{ pct }}pct_threshold))
              / count(*) filter (churn_probability = top_{{ pct }}pct_threshold)
              * sum(churned) filter (churn_probability = top_{{ pct }}pct_threshold)
            as churned_in_top_{{ pct }}pct{{ ',' if not loop.last }}
        {%- endfor %}

    from thresholds
    group by all

),

calibration as (

    select
        as_of_date, horizon_days, model_name, model_version, segment_type, segment,
        sum(share_of_customers * abs(mean_churn_probability - observed_churn_rate)) as ece

    from reliability
    group by all

),

final as (

    select
        aggregated.as_of_date,
        aggregated.horizon_days,
        aggregated.model_name,
        aggregated.model_version,
        aggregated.segment_type,
        aggregated.segment,
        cast(aggregated.as_of_date + to_days(aggregated.horizon_days::integer) as date) as horizon_end_date,
        aggregated.customers,
        aggregated.churned_customers,
        aggregated.churn_rate,
        aggregated.mean_churn_probability,
        case when churned_customers between 1 and customers - 1 then
            (churned_rank_sum - churned_customers * (churned_customers + 1) / 2)
            / (churned_customers * (customers - churned_customers))
        end as auc,
        case when churned_customers between 1 and customers - 1 then
            churned_precision_sum / churned_customers
        end as pr_auc,
        aggregated.brier,
        calibration.ece,
        {%- for pct in (10, 20) %}
        case when churned_customers > 0 then
            churned_in_top_{{ pct }}pct / top_{{ pct }}pct_customers / churn_rate
        end as lift_at_{{ pct }}pct,
        {%- endfor %}
        {%- for pct in (10, 20) %}
        case when churned_customers > 0 then
            churned_in_top_{{ pct }}pct / churned_customers
        end as recall_at_{{ pct }}pct{{ ',' if not loop.last }}
        {%- endfor %}

    from aggregated
    inner join calibration using (as_of_date, horizon_days, model_name, model_version, segment_type, segment)

)

select * from final
