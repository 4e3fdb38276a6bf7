with

source as (

    select * from {{ source('shop', 'support_tickets') }}

),

renamed as (

    select

        ----------  ids
        ticket_id,
        customer_id,

        ----------  text
        topic as ticket_topic,

        ----------  numerics
        satisfaction as satisfaction_score,

        ----------  timestamps
        opened_ts as opened_at,
        cast(opened_ts as date) as opened_date,
        resolved_ts as resolved_at,
        cast(resolved_ts as date) as resolved_date

    from source

)

select * from renamed
