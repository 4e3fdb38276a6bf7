with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select

        ----------  ids
        order_id,
        customer_id,

        ----------  text
        lower(trim(status)) as order_status,
        channel as order_channel,
        nullif(trim(coupon_code), '') as coupon_code,

        ----------  numerics
        amount as order_amount,
        coalesce(discount_amount, 0) as discount_amount,

        ----------  timestamps
        order_ts as ordered_at,
        cast(order_ts as date) as order_date,

        ----------  booleans
        coalesce(lower(trim(status)) = 'cancelled', false) as is_cancelled,
        coalesce(lower(trim(status)) = 'returned', false) as is_returned,
        nullif(trim(coupon_code), '') is not null as has_coupon,
        coalesce(discount_amount, 0) > 0 as has_discount

    from source

)

select * from renamed
