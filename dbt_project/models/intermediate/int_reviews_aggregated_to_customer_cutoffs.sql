{#- Review features per customer and cutoff. -#}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_enumerated') }}
    where cutoff_date in ({{ pending_cutoffs('customer_features') }})

),

reviews as (

    select * from {{ ref('stg_shop__reviews') }}

),

reviews_before_cutoffs as (

    select
        cutoffs.cutoff_date,
        reviews.*,
        cutoffs.cutoff_date - reviews.review_date as days_before_cutoff

    from reviews
    inner join cutoffs on reviews.review_date <= cutoffs.cutoff_date

),

aggregated as (

    select
        customer_id,
        cutoff_date as as_of_date,
        count(*) as count_reviews,
        {{ window_sum('1', 365) }} as count_reviews_365d,
        avg(rating) as mean_review_rating,
        arg_max(rating, reviewed_at) as last_review_rating,
        avg(case when is_low_rating then 1.0 else 0.0 end) as share_reviews_low_rating,
        max(review_date) as last_review_date

    from reviews_before_cutoffs
    group by 1, 2

)

select * from aggregated
