{#- churnwatch's own campaigns: the audience ml/stages/decide.py stored per campaign (treated
    and held out), read back as campaign contacts dated at the decision's as-of date. The table
    appears with the first decide run; before that this view is empty. -#}
{%- set decisions = source('retention', 'audience_decisions') %}

with

source as (

    {%- if relation_exists(decisions) %}
    select * from {{ decisions }}
    {%- else %}
    select
        null::varchar as campaign_id, null::varchar as customer_id, null::varchar as offer_code,
        null::varchar as channel, null::boolean as is_control, null::date as as_of_date,
        null::integer as horizon_days
    limit 0
    {%- endif %}

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
        cast(as_of_date as timestamp) as contacted_at,
        cast(as_of_date as date) as contact_date,

        ----------  numerics
        cast(horizon_days as integer) as decided_horizon_days,

        ----------  booleans
        is_control

    from source

)

select * from renamed
