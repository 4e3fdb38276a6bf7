{#- The backtest metrics the training stage records per registered model version (one row each).
    The training stage creates every column listed here (NULL where a metric was not computed),
    so this list is the table's declaration. -#}

with

source as (

    select * from {{ source('ml', 'model_performance') }}

),

renamed as (

    select

        ----------  ids
        model_name,
        model_version,
        run_id,

        ----------  dates
        as_of_date,
        test_cutoff,
        horizon_days,

        ----------  the model on the test cutoff
        auc,
        pr_auc,
        brier,
        ece,
        lift_at_10pct,
        lift_at_20pct,
        recall_at_10pct,
        recall_at_20pct,
        base_rate,
        test_customers,
        cv_auc,
        backtest_auc_mean,

        ----------  baselines on the test cutoff
        baseline_days_since_last_order_auc,
        baseline_rfm_logistic_auc,
        baseline_rfm_logistic_pr_auc,
        baseline_bgnbd_auc,
        baseline_bgnbd_pr_auc,

        ----------  the value model
        value_mae,
        value_total_relative_error,
        value_spearman,
        value_model,

        ----------  the promotion gate
        promoted,
        promotion_decision,
        trained_at

    from source

)

select * from renamed
