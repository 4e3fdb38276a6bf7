{#- The campaign of one scoring run: the policy's decision per customer with the products to show. -#}
{%- set decisions = source('retention', 'audience_decisions') %}
{%- set campaign = "'" ~ var('campaign_id') ~ "'" if var('campaign_id')
    else "(select max_by(campaign_id, as_of_date) from " ~ decisions ~ ")" %}

with

decisions as (

    select * from {{ decisions }}
    where campaign_id = {{ campaign }}

),

recommendations as (

    select * from {{ ref('customer_product_recommendations') }}

),

final as (

    select
        decisions.campaign_id,
        decisions.customer_id,
        decisions.action,
        decisions.offer_code,
        decisions.channel,
        coalesce(recommendations.recommended_products, []::varchar[]) as recommended_products,
        decisions.is_control,
        decisions.priority_rank,
        decisions.expected_net_value,
        decisions.reason_summary,
        decisions.as_of_date,
        decisions.horizon_days,
        decisions.unit_cost,
        decisions.expected_effect,
        decisions.effect_source,
        decisions.churn_probability,
        decisions.predicted_value,
        decisions.risk_tier,
        decisions.value_tier,
        decisions.segment,
        decisions.model_version,
        decisions.expected_uplift,
        decisions.assignment,
        decisions.propensity,
        decisions.effect_model_version

    from decisions
    left join recommendations
        on decisions.campaign_id = recommendations.campaign_id
        and decisions.customer_id = recommendations.customer_id

)

select * from final
