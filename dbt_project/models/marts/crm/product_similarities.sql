{#- Item-to-item co-purchase similarity over the last year: cosine of two products' buyer sets,
    common buyers / sqrt(buyers of one × buyers of the other). Each customer's 30 most recently
    bought products count, which bounds the pairs per customer. Top 20 neighbours per product. -#}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(order_date) from " ~ ref('stg_shop__orders') ~ ")" %}

with

orders as (

    select order_id, customer_id, order_date
    from {{ ref('stg_shop__orders') }}
    where not is_cancelled
      and order_date <= {{ as_of }}
      and order_date > {{ as_of }} - interval 365 day

),

order_items as (

    select order_id, product_id from {{ ref('stg_shop__order_items') }}

),

customer_products as (

    select
        orders.customer_id,
        order_items.product_id,
        max(orders.order_date) as last_purchased_date

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    group by 1, 2
    qualify row_number() over (
        partition by orders.customer_id order by max(orders.order_date) desc, order_items.product_id
    ) <= 30

),

product_buyers as (

    select product_id, count(*) as count_buyers
    from customer_products
    group by 1

),

co_purchases as (

    select
        bought.product_id,
        also_bought.product_id as similar_product_id,
        count(*) as count_common_buyers

    from customer_products as bought
    inner join customer_products as also_bought
        on bought.customer_id = also_bought.customer_id
        and bought.product_id <> also_bought.product_id
    group by 1, 2

),

similarities as (

    select
        co_purchases.product_id,
        co_purchases.similar_product_id,
        co_purchases.count_common_buyers,
        co_purchases.count_common_buyers
            / sqrt(buyers.count_buyers * similar_buyers.count_buyers) as similarity

    from co_purchases
    inner join product_buyers as buyers on co_purchases.product_id = buyers.product_id
    inner join product_buyers as similar_buyers on co_purchases.similar_product_id = similar_buyers.product_id

),

ranked as (

    select
        *,
        row_number() over (
            partition by product_id order by similarity desc, count_common_buyers desc, similar_product_id
        ) as similarity_rank

    from similarities

)

select * from ranked
where similarity_rank <= 20
