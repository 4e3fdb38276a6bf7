{#- One row per audience customer: up to N products they have not bought, best first. First the
    products most similar to what they bought (sum of cosine similarities over each bought product's
    10 nearest), then best-sellers of their favourite category, then the shop's best-sellers, so a
    customer without item history still gets some. recommendation_sources says which, per product. -#}
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

    {#- the similarities of the campaign's as-of date (the table keeps one slice per date) -#}
    select * from {{ ref('product_similarities') }}
    where as_of_date = (select max(as_of_date) from {{ decisions }} where campaign_id = {{ campaign }})

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
        count(distinct orders.customer_id) as count_buyers,
        row_number() over (
            partition by any_value(order_items.product_category)
            order by count(distinct orders.customer_id) desc, order_items.product_id
        ) as category_rank,
        row_number() over (order by count(distinct orders.customer_id) desc, order_items.product_id) as shop_rank

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
        3 as source_strength,
        sum(similarities.similarity) as score

    from bought
    inner join similarities
        on bought.product_id = similarities.product_id
        and similarities.similarity_rank <= 10
    group by 1, 2

),

category_best_sellers as (

    select
        favourite_categories.customer_id,
        best_sellers.product_id,
        2 as source_strength,
        best_sellers.count_buyers as score

    from favourite_categories
    inner join best_sellers on favourite_categories.product_category = best_sellers.product_category
    where best_sellers.category_rank <= 10

),

shop_best_sellers as (

    select
        audience.customer_id,
        best_sellers.product_id,
        1 as source_strength,
        best_sellers.count_buyers as score

    from audience
    cross join best_sellers
    where best_sellers.shop_rank <= 10

),

candidates as (

    select * from similar_to_bought
    union all
    select * from category_best_sellers
    union all
    select * from shop_best_sellers

),

not_yet_bought as (

    select
        candidates.customer_id,
        candidates.product_id,
        max((candidates.source_strength, candidates.score, candidates.product_id)) as preference

    from candidates
    anti join bought
        on candidates.customer_id = bought.customer_id
        and candidates.product_id = bought.product_id
    group by 1, 2

),

top_products as (

    {#- top-N per customer as one aggregate (no window over every candidate); ties broken by id -#}
    select
        customer_id,
        max_by(product_id, preference, {{ var('recommendations_per_customer', 5) }}) as recommended_products,
        max_by(preference[1], preference, {{ var('recommendations_per_customer', 5) }}) as source_strengths

    from not_yet_bought
    group by 1

),

final as (

    select
        audience.campaign_id,
        audience.customer_id,
        coalesce(top_products.recommended_products, []::varchar[]) as recommended_products,
        list_transform(coalesce(top_products.source_strengths, []::integer[]), lambda s:
            case s when 3 then 'similar_to_bought' when 2 then 'category_best_seller' else 'shop_best_seller' end
        ) as recommendation_sources

    from audience
    left join top_products on audience.customer_id = top_products.customer_id

)

select * from final
