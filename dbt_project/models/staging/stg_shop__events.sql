with

source as (

    select * from {{ source('shop', 'events') }}

),

renamed as (

    select

        ----------  ids
        customer_id,
        -- events without a session id fall into one session per customer and day
        coalesce(session_id, customer_id || '@' || cast(cast(event_ts as date) as varchar))
            as session_id,
        product_id,

        ----------  text
        lower(trim(event_type)) as event_type,
        device,

        ----------  timestamps
        event_ts as occurred_at,
        cast(event_ts as date) as event_date

    from source

)

select * from renamed
