with

source as (

    select * from {{ source('shop', 'campaign_contacts') }}

),

renamed as (

    select

        ----------  ids
        campaign_id,
        customer_id,

        ----------  text
        offer_code,
        channel as contact_channel,

        ----------  timestamps
        contact_ts as contacted_at,
        cast(contact_ts as date) as contact_date,

        ----------  booleans
        coalesce(is_control, false) as is_control

    from source

)

select * from renamed
