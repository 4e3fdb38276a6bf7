with

source as (

    select * from {{ source('shop', 'reviews') }}

),

renamed as (

    select

        ----------  ids
        customer_id,
        order_id,

        ----------  numerics
        rating,

        ----------  timestamps
        review_ts as reviewed_at,
        cast(review_ts as date) as review_date,

        ----------  booleans
        rating <= 2 as is_low_rating

    from source

)

select * from renamed
