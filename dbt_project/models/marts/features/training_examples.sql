{#- A view: features are stored once, in customer_features (incremental by cutoff), labels in
    int_customer_cutoffs_labelled (incremental by cutoff); reading it costs one join.
    is_treated_in_label_window: the customer was contacted (not held out) by a campaign of the
    shop or of churnwatch on a day from the cutoff through the end of its label window, so the
    label says what happened WITH an intervention; the churn model estimates the risk if the shop
    does nothing, and training leaves these rows out (settings.train_exclude_treated). Held-out
    controls are not treated: they stay. -#}
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

treated_contacts as (

    select distinct customer_id, contact_date
    from {{ ref('int_campaign_contacts_deduplicated') }}
    where not is_control

),

treated_in_label_window as (

    {#- a contact on the cutoff day itself acts on the label window too (churnwatch's campaigns
        are dated at their decision's as-of date and sent the next morning) -#}
    select distinct treated_contacts.customer_id, cutoffs.cutoff_date, cutoffs.horizon_days
    from treated_contacts
    inner join cutoffs
        on treated_contacts.contact_date >= cutoffs.cutoff_date
        and treated_contacts.contact_date <= cutoffs.label_window_end_date

),

labelled as (

    select
        customer_features.*,
        cutoffs.horizon_days,
        cutoffs.is_backtest_cutoff,
        labels.is_churned,
        treated_in_label_window.customer_id is not null as is_treated_in_label_window

    from customer_features
    inner join cutoffs on customer_features.as_of_date = cutoffs.cutoff_date
    inner join labels
        on customer_features.customer_id = labels.customer_id
        and customer_features.as_of_date = labels.as_of_date
        and cutoffs.horizon_days = labels.horizon_days
    left join treated_in_label_window
        on customer_features.customer_id = treated_in_label_window.customer_id
        and customer_features.as_of_date = treated_in_label_window.cutoff_date
        and cutoffs.horizon_days = treated_in_label_window.horizon_days

)

select * from labelled
