{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}
{#- Item-to-item co-purchase similarity over the year before the as-of date: cosine of two
    products' buyer sets, common buyers / sqrt(buyers of one × buyers of the other). Each
    customer's 30 most recently bought products count, which bounds the pairs per customer. Top 20
    neighbours per product. Shop-wide, so built once per as-of date and kept (one slice per
    as_of_date): every campaign and horizon of that date reuses it; a full refresh rebuilds all.
    Everything after reading the orders works on integer product keys (products are few, customers
    many), and the top 20 come from a bounded heap per product rather than a window over all pairs. -#}
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

product_keys as (

    {#- an integer key per product, in product_id order: comparing keys compares ids -#}
    select product_id, row_number() over (order by product_id) as product_key
    from (select distinct product_id from order_items)

),

customer_products as (

    select
        hash(orders.customer_id) as customer_key,
        product_keys.product_key,
        max(orders.order_date) as last_purchased_date

    from order_items
    inner join orders on order_items.order_id = orders.order_id
    inner join product_keys on order_items.product_id = product_keys.product_id
    group by 1, 2
    qualify row_number() over (
        partition by hash(orders.customer_id) order by max(orders.order_date) desc, product_keys.product_key
    ) <= 30

),

products as (

    select product_keys.product_id, product_keys.product_key, bought.count_buyers
    from (select product_key, count(*) as count_buyers from customer_products group by 1) as bought
    inner join product_keys on bought.product_key = product_keys.product_key

),

co_purchases as (

    {#- each unordered pair once (the lower product key first), counted on one packed BIGINT key;
        cosine is symmetric, so the pair is mirrored after counting: half the join and group-by -#}
    select
        bought.product_key * {{ pack }} + also_bought.product_key as pair,
        count(*) as count_common_buyers

    from customer_products as bought
    inner join customer_products as also_bought
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
        co_purchases.product_key,
        co_purchases.similar_product_key,
        co_purchases.count_common_buyers,
        co_purchases.count_common_buyers / sqrt(buyers.count_buyers * similar_buyers.count_buyers) as similarity

    from both_directions as co_purchases
    inner join products as buyers on co_purchases.product_key = buyers.product_key
    inner join products as similar_buyers on co_purchases.similar_product_key = similar_buyers.product_key

),

top_neighbours as (

    {#- the 20 nearest per product, best first: highest similarity, then most common buyers, then
        the lower similar product id (a bounded heap per product instead of ranking every pair) -#}
    select
        product_key,
        max_by(
            {'similar_product_key': similar_product_key, 'count_common_buyers': count_common_buyers,
             'similarity': similarity},
            {'similarity': similarity, 'count_common_buyers': count_common_buyers,
             'lower_similar_product_first': -similar_product_key},
            20
        ) as neighbours

    from similarities
    group by 1

),

ranked as (

    select
        product_key,
        unnest(neighbours) as neighbour,
        unnest(range(1, len(neighbours) + 1)) as similarity_rank

    from top_neighbours

),

final as (

    select
        {{ as_of }} as as_of_date,
        products.product_id,
        similar_products.product_id as similar_product_id,
        ranked.neighbour.count_common_buyers,
        ranked.neighbour.similarity,
        ranked.similarity_rank

    from ranked
    inner join products on ranked.product_key = products.product_key
    inner join products as similar_products on ranked.neighbour.similar_product_key = similar_products.product_key

)

select * from final

{%- endif %}
