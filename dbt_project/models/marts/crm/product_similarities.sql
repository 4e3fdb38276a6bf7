{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}
{#- Item-to-item co-purchase similarity over the year before the as-of date: cosine of two
    products' buyer sets, common buyers / sqrt(buyers of one × buyers of the other). Each
    customer's 30 most recently bought products count, which bounds the pairs per customer. Top 20
    neighbours per product. Shop-wide, so built once per as-of date and kept (one slice per
    as_of_date): every campaign and horizon of that date reuses it; a full refresh rebuilds all.
    Pairs are counted on integer keys (products are few, customers many). -#}
{%- set as_of = "date '" ~ var('as_of_date') ~ "'" if var('as_of_date')
    else "(select max(order_date) from " ~ ref('stg_shop__orders') ~ ")" %}
{%- set pack = 1000000000 %}{#- product keys (1..products) pack into one BIGINT pair: up to 1e9 products -#}
{%- set built = false %}
{%- if execute and is_incremental() and 'as_of_date' in adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
    {%- set built = run_query("select count(*) > 0 from " ~ this ~ " where as_of_date = " ~ as_of).columns[0].values()[0] %}
{%- endif %}

{%- if built %}

select * from {{ this }} where false

{%- else %}

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
        hash(orders.customer_id) as customer_key,
        order_items.product_id,
        max(orders.order_date) as last_purchased_date

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    group by 1, 2
    qualify row_number() over (
        partition by hash(orders.customer_id) order by max(orders.order_date) desc, order_items.product_id
    ) <= 30

),

products as (

    select product_id, row_number() over (order by product_id) as product_key, count_buyers
    from (select product_id, count(*) as count_buyers from customer_products group by 1)

),

keyed as (

    select customer_products.customer_key, products.product_key
    from customer_products
    inner join products on customer_products.product_id = products.product_id

),

co_purchases as (

    {#- each unordered pair once (the lower product key first), counted on one packed BIGINT key;
        cosine is symmetric, so the pair is mirrored after counting: half the join and group-by -#}
    select
        bought.product_key * {{ pack }} + also_bought.product_key as pair,
        count(*) as count_common_buyers

    from keyed as bought
    inner join keyed as also_bought
        on bought.customer_key = also_bought.customer_key
        and bought.product_key < also_bought.product_key
    group by 1

),

both_directions as (

    select pair // {{ pack }} as product_key, pair % {{ pack }} as similar_product_key, count_common_buyers
    from co_purchases
    union all
    select pair % {{ pack }} as product_key, pair // {{ pack }} as similar_product_key, count_common_buyers
    from co_purchases

),

similarities as (

    select
        buyers.product_id,
        similar_buyers.product_id as similar_product_id,
        co_purchases.count_common_buyers,
        co_purchases.count_common_buyers / sqrt(buyers.count_buyers * similar_buyers.count_buyers) as similarity

    from both_directions as co_purchases
    inner join products as buyers on co_purchases.product_key = buyers.product_key
    inner join products as similar_buyers on co_purchases.similar_product_key = similar_buyers.product_key

),

ranked as (

    select
        *,
        row_number() over (
            partition by product_id order by similarity desc, count_common_buyers desc, similar_product_id
        ) as similarity_rank

    from similarities

)

select {{ as_of }} as as_of_date, * from ranked
where similarity_rank <= 20

{%- endif %}
