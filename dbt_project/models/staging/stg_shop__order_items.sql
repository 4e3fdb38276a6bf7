with

source as (

    select * from {{ source('shop', 'order_items') }}

),

renamed as (

    select

        ----------  ids
        order_id,
        product_id,

        ----------  text
        category as product_category,

        ----------  numerics
        coalesce(quantity, 1) as quantity,
        unit_price,
        coalesce(quantity, 1) * unit_price as line_amount

    from source

)

select * from renamed
