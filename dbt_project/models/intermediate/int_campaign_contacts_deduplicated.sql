{#- One row per campaign per customer contacted or held out, from two places: the shop's own
    history (raw campaign_contacts) and churnwatch's campaigns (the audience the decide stage
    stored in retention.audience_decisions, absent until a first decide ran). A customer listed
    twice in a campaign keeps the first contact; a campaign of churnwatch that the shop also
    exports keeps churnwatch's row: assignment (control or not) happened at its decision date,
    on the features of that date. Contacts after the as-of date have not happened yet. -#}

with

shop_contacts as (

    select *, 'shop' as contact_source from {{ ref('stg_shop__campaign_contacts') }}

),

churnwatch_contacts as (

    select * exclude (decided_horizon_days), 'churnwatch' as contact_source
    from {{ ref('stg_churnwatch__audience_decisions') }}

),

unioned as (

    select * from churnwatch_contacts
    union all by name
    select * from shop_contacts

),

deduplicated as (

    select * from unioned
    where contact_date <= {{ sql_date(as_of_date()) }}
    qualify row_number() over (
        partition by campaign_id, customer_id
        order by contact_source = 'churnwatch' desc, contacted_at, is_control desc,
                 offer_code nulls last, contact_channel nulls last
    ) = 1

)

select * from deduplicated
