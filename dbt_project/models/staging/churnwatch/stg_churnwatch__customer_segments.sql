{#- The tiers and segments ml/stages/decide.py stores per scoring run (rules: ml/model/segments.py). -#}

with

source as (

    select * from {{ source('retention', 'customer_segments') }}

),

renamed as (

    select

        ----------  ids
        customer_id,
        as_of_date,
        horizon_days,

        ----------  scores and tiers
        churn_probability,
        predicted_value,
        risk_tier,
        value_tier,
        recency_score,
        frequency_score,
        monetary_score,
        segment,

        ----------  booleans
        has_service_issue,

        ----------  RFM inputs
        days_since_last_order,
        order_count,
        spend,

        ----------  lineage
        model_version

    from source

)

select * from renamed
