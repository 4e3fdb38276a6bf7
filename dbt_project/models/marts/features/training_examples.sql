{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook="delete from {{ this }} as examples where not exists (select 1 from {{ ref('int_cutoffs_enumerated') }} as spine where spine.cutoff_role = 'training' and spine.cutoff_date = examples.as_of_date and spine.horizon_days = examples.horizon_days)"
) }}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_role = 'training'
      and cutoff_date in ({{ pending_cutoffs('training_examples', 'training') }})

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
