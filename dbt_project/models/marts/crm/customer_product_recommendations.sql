{#- Up to N products per audience customer that they have not bought: first the products most
    similar to what they bought (sum of cosine similarities), then best-sellers of their favourite
    category, then the shop's best-sellers, so a customer without item history still gets some. -#}
{%- set decisions = source('retention', 'audience_decisions') %}
{%- set campaign = "'" ~ var('campaign_id') ~ "'" if var('campaign_id')
    else "(select max_by(campaign_id, as_of_date) from " ~ decisions ~ ")" %}

with

audience as (

    select distinct campaign_id, customer_id
    from {{ decisions }}
    where campaign_id = {{ campaign }}

),

orders as (

    select order_id, customer_id, order_date
    from {{ ref('stg_shop__orders') }}
    where order_date <= (select max(as_of_date) from {{ decisions }} where campaign_id = {{ campaign }})

),

order_items as (

    select order_id, product_id, product_category from {{ ref('stg_shop__order_items') }}

),

similarities as (

    select * from {{ ref('product_similarities') }}

),

bought as (

    select distinct
        orders.customer_id,
        order_items.product_id,
        order_items.product_category

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    where orders.customer_id in (select customer_id from audience)

),

best_sellers as (

    select
        order_items.product_id,
        any_value(order_items.product_category) as product_category,
        count(distinct orders.customer_id) as count_buyers

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    where orders.order_date > (select max(order_date) from orders) - interval 365 day
    group by 1

),

favourite_categories as (

    select customer_id, product_category
    from bought
    where product_category is not null
    group by 1, 2
    qualify row_number() over (partition by customer_id order by count(*) desc, product_category) = 1

),

similar_to_bought as (

    select
        bought.customer_id,
        similarities.similar_product_id as product_id,
        1 as source_priority,
        sum(similarities.similarity) as score

    from bought
    inner join similarities on bought.product_id = similarities.product_id
    group by 1, 2

),

category_best_sellers as (

    select
        favourite_categories.customer_id,
        best_sellers.product_id,
        2 as source_priority,
        best_sellers.count_buyers as score

    from favourite_categories
    inner join best_sellers on favourite_categories.product_category = best_sellers.product_category

),

shop_best_sellers as (

    select
        audience.customer_id,
        top.product_id,
        3 as source_priority,
        top.count_buyers as score

    from audience
    cross join (select * from best_sellers order by count_buyers desc, product_id limit 50) as top

),

candidates as (

    select * from similar_to_bought
    union all
    select * from category_best_sellers
    union all
    select * from shop_best_sellers

),

not_yet_bought as (

    select candidates.*
    from candidates
    anti join bought
        on candidates.customer_id = bought.customer_id
        and candidates.product_id = bought.product_id
    qualify row_number() over (
        partition by candidates.customer_id, candidates.product_id order by source_priority, score desc
    ) = 1

),

ranked as (

    select
        audience.campaign_id,
        not_yet_bought.customer_id,
        not_yet_bought.product_id,
        case not_yet_bought.source_priority
            when 1 then 'similar_to_bought' when 2 then 'category_best_seller' else 'shop_best_seller'
        end as recommendation_source,
        not_yet_bought.score as recommendation_score,
        row_number() over (
            partition by not_yet_bought.customer_id
            order by not_yet_bought.source_priority, not_yet_bought.score desc, not_yet_bought.product_id
        ) as recommendation_rank

    from not_yet_bought
    inner join audience on not_yet_bought.customer_id = audience.customer_id

)

select * from ranked
where recommendation_rank <= {{ var('recommendations_per_customer', 5) }}
