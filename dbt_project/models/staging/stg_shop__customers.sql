with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select

        ----------  ids
        customer_id,

        ----------  text
        country,
        region,
        gender,
        acquisition_channel,
        email_hash,
        phone_hash,
        case
            when age is null then null
            when age < 25 then '18-24'
            when age < 35 then '25-34'
            when age < 45 then '35-44'
            when age < 55 then '45-54'
            when age < 65 then '55-64'
            else '65+'
        end as age_band,

        ----------  numerics
        age,

        ----------  timestamps
        signup_ts as signed_up_at,
        cast(signup_ts as date) as signup_date

    from source

)

select * from renamed
