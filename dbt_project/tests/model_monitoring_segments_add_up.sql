{#- model_monitoring: the risk tiers of a scoring run add up to its 'all' row (customers and
    churned customers), and the reliability bins of every segment add up to its customers. -#}

with

monitoring as (

    select * from {{ ref('model_monitoring') }}

),

reliability as (

    select * from {{ ref('model_monitoring_reliability') }}

),

tiers_vs_all as (

    select
        as_of_date, horizon_days, model_name, model_version,
        sum(customers) filter (segment_type = 'risk_tier') as tier_customers,
        sum(customers) filter (segment_type = 'all') as all_customers,
        sum(churned_customers) filter (segment_type = 'risk_tier') as tier_churned,
        sum(churned_customers) filter (segment_type = 'all') as all_churned

    from monitoring
    group by all

),

bins_vs_segment as (

    select
        as_of_date, horizon_days, model_name, model_version, segment_type, segment,
        any_value(monitoring.customers) as customers,
        sum(reliability.customers) as bin_customers

    from monitoring
    left join reliability using (as_of_date, horizon_days, model_name, model_version, segment_type, segment)
    group by all

)

select 'tiers' as failing_check from tiers_vs_all
where tier_customers is distinct from all_customers or tier_churned is distinct from all_churned
union all
select 'bins' from bins_vs_segment
where bin_customers is distinct from customers
