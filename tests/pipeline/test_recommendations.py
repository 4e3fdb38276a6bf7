"""Recommendations on a real-sized catalogue: more than 50,000 distinct products.

Real shops sell tens of thousands of products. The session's tier-S pipeline warehouse is copied and
its products are split into catalogue variants by customer group (each of 200 groups of customers
buys its own variant of each product, ``<product_id>-<group>``), which keeps the co-purchase
structure within each group and turns the shop's ~2,000 products into ~65,000. The crm marts are
then built for real (dbt, with their data tests) on the copy.
"""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from helpers.run import END_DATE, HORIZON
from ml.stages import decide

VARIANTS = 200  # customer groups, each buying its own variant of every product
MIN_PRODUCTS = 50_000
N = decide.RECOMMENDATIONS_PER_CUSTOMER


def _split_catalogue(con: duckdb.DuckDBPyConnection) -> None:
    """Give every product one variant per customer group, in the raw order items and in the
    feature layer's customer-product table alike (the same customer key: ``hash(customer_id)``),
    and drop the as-of date's similarities so that the marts rebuild them from the new items."""
    variant = f"'-' || (hash({{}}) % {VARIANTS})"
    con.execute(f"""
        update raw.order_items set product_id = order_items.product_id || {variant.format('hash(orders.customer_id)')}
        from raw.orders
        where orders.order_id = order_items.order_id""")
    con.execute(f"""
        update intermediate.int_order_items_aggregated_to_customer_products
        set product_id = product_id || {variant.format('customer_key')}""")
    con.execute("delete from marts.product_similarities where as_of_date = ?", [END_DATE])


@pytest.fixture(scope="module")
def big_catalogue(pipeline_s, shop_s, tmp_path_factory):
    """A copy of the session's pipeline warehouse with > 50,000 products, its crm marts rebuilt."""
    from ml.core.settings import Settings

    warehouse = tmp_path_factory.mktemp("big_catalogue") / "warehouse"
    shutil.copytree(pipeline_s, warehouse, ignore=shutil.ignore_patterns("published", "exports", "mlflow"))
    settings = Settings.load(raw_dir=shop_s, warehouse=warehouse, as_of=END_DATE, horizon_days=HORIZON)
    con = duckdb.connect(str(settings.db_path))
    try:
        _split_catalogue(con)
    finally:
        con.close()
    decide.build_marts(settings)  # raised "more than 4095 products" before plain keys
    return settings


def _query(settings, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_the_catalogue_is_real_sized(big_catalogue):
    (products,), = _query(big_catalogue, """
        select count(distinct product_id) from intermediate.int_order_items_aggregated_to_customer_products
        where first_purchased_date <= ?""", [END_DATE])
    assert products > MIN_PRODUCTS


def test_every_audience_customer_gets_n_new_valid_products(big_catalogue):
    campaign = big_catalogue.campaign_id
    (audience, recommended, full, invalid, already_bought, sources_ok), = _query(big_catalogue, """
        with audience as (
            select distinct customer_id from retention.audience_decisions where campaign_id = ?
        ),
        recommendations as (
            select * from marts.customer_product_recommendations where campaign_id = ?
        ),
        items as (
            select recommendations.customer_id, item.product_id
            from recommendations, unnest(recommended_products) as item(product_id)
        )
        select
            (select count(*) from audience),
            (select count(*) from recommendations semi join audience using (customer_id)),
            (select count(*) from recommendations
             where len(recommended_products) = ? and len(list_distinct(recommended_products)) = ?
               and len(recommendation_sources) = ?),
            (select count(*) from items
             where product_id not in (select product_id from staging.stg_shop__order_items)),
            (select count(*) from items
             where exists (select 1 from staging.stg_shop__orders as orders
                           join staging.stg_shop__order_items as order_items using (order_id)
                           where orders.customer_id = items.customer_id
                             and order_items.product_id = items.product_id)),
            (select bool_and(list_has_all(['similar_to_bought', 'category_best_seller', 'shop_best_seller'],
                                          recommendation_sources))
             from recommendations)
        """, [campaign, campaign, N, N, N])
    assert audience > 0
    assert recommended == audience == full
    assert invalid == 0
    assert already_bought == 0
    assert sources_ok


def test_similar_products_come_from_the_large_catalogue(big_catalogue):
    """Most recommendations are co-purchase neighbours of what the customer bought, spread over
    the whole catalogue (product keys far beyond the old 4,095 limit), each a top-10 neighbour of
    a product the customer bought."""
    campaign = big_catalogue.campaign_id
    (similar, distinct_similar, not_a_neighbour), = _query(big_catalogue, """
        with items as (
            select customer_id, unnest(recommended_products) as product_id,
                   unnest(recommendation_sources) as source
            from marts.customer_product_recommendations where campaign_id = ?
        ),
        similar_items as (select * from items where source = 'similar_to_bought')
        select
            count(*),
            count(distinct product_id),
            count(*) filter (where not exists (
                select 1
                from intermediate.int_order_items_aggregated_to_customer_products as bought
                join marts.product_similarities as neighbours
                  on neighbours.product_id = bought.product_id
                 and neighbours.as_of_date = ? and neighbours.similarity_rank <= 10
                where bought.customer_key = hash(similar_items.customer_id)
                  and neighbours.similar_product_id = similar_items.product_id))
        from similar_items
        """, [campaign, END_DATE])
    assert similar > 0
    assert distinct_similar > 4_095
    assert not_a_neighbour == 0
