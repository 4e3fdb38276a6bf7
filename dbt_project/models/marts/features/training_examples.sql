{#- A view: the features are stored once, in customer_features (incremental by cutoff); the
    labels are a small table. Reading it costs one join. -#}
{{ config(materialized='view') }}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_role = 'training'

),

customer_features as (

    select * from {{ ref('customer_features') }}

),

ordered_in_label_window as (

    select * from {{ ref('int_customer_cutoffs_labelled') }}

),

labelled as (

    select
        customer_features.*,
        cutoffs.horizon_days,
        cutoffs.is_backtest_cutoff,
        ordered_in_label_window.customer_id is null as is_churned

    from customer_features
    inner join cutoffs on customer_features.as_of_date = cutoffs.cutoff_date
    left join ordered_in_label_window
        on customer_features.customer_id = ordered_in_label_window.customer_id
        and customer_features.as_of_date = ordered_in_label_window.as_of_date

)

select * from labelled
