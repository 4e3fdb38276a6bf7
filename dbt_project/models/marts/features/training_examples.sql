{#- A view: features are stored once, in customer_features (incremental by cutoff), labels in
    int_customer_cutoffs_labelled (incremental by cutoff); reading it costs one join. -#}
{{ config(materialized='view') }}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_role = 'training'

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

labels as (

    select * from {{ ref('int_customer_cutoffs_labelled') }}

),

labelled as (

    select
        customer_features.*,
        cutoffs.horizon_days,
        cutoffs.is_backtest_cutoff,
        labels.is_churned

    from customer_features
    inner join cutoffs on customer_features.as_of_date = cutoffs.cutoff_date
    inner join labels
        on customer_features.customer_id = labels.customer_id
        and customer_features.as_of_date = labels.as_of_date
        and cutoffs.horizon_days = labels.horizon_days

)

select * from labelled
