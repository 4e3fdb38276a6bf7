-- depends_on: {{ ref('int_cutoffs_enumerated') }}
{#- Review features per customer and cutoff. -#}
{%- set cutoffs = pending_cutoff_dates('customer_features') %}

with

reviews as (

    select {{ customer_key('customer_id') }} as customer_key, * exclude (customer_id)
    from {{ ref('stg_shop__reviews') }}

),

aggregated as (

    {% call(cutoff, cutoff_index) union_per_cutoff(cutoffs) -%}
    select
        customer_key,
        {{ cutoff }} as as_of_date,
        count(*) as count_reviews,
        {{ window_sum('1', 365) }} as count_reviews_365d,
        avg(rating) as mean_review_rating,
        arg_max(rating, reviewed_at) as last_review_rating,
        avg(case when is_low_rating then 1.0 else 0.0 end) as share_reviews_low_rating,
        max(review_date) as last_review_date
    from {{ rows_at_cutoff('reviews', 'review_date', cutoff) }}
    group by customer_key
    {%- endcall %}

)

select * from aggregated
