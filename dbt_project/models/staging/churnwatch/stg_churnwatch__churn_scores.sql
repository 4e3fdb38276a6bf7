{#- The scores ml/stages/score.py stores per scoring run, as stored (its Arrow table fixes the
    types): named here so the marts read one declared list of columns. -#}

with

source as (

    select * from {{ source('scoring', 'churn_scores') }}

),

renamed as (

    select

        ----------  ids
        customer_id,
        as_of_date,
        horizon_days,

        ----------  numerics
        churn_probability,
        risk_tier,
        predicted_value,
        value_at_risk,

        ----------  reasons
        reason_1,
        reason_2,
        reason_3,

        ----------  lineage
        model_name,
        model_version,
        run_id,
        scored_at

    from source

)

select * from renamed
