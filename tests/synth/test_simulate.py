"""The closed-loop simulator: campaign files applied to the generated shop (tiny shops, fast)."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml.core.contract import SOURCES
from ml.synth import generate
from ml.synth.judge import judge, oracle_assignment, random_assignment, read_campaign_truth
from ml.synth.simulate import simulate

SEED, N, HISTORY = 5, 1500, 400
END = dt.date(2025, 6, 30)
UNTIL = END + dt.timedelta(days=40)
CAMPAIGN = "CW-20250630"


def crm_file(path: Path, rows: pd.DataFrame, campaign_id: str = CAMPAIGN, as_of: dt.date = END) -> Path:
    """A campaign file shaped like the CRM export (ml/stages/publish/crm_export.py), plus extras."""
    n = len(rows)
    table = pd.DataFrame({
        "campaign_id": campaign_id, "customer_id": rows["customer_id"].to_numpy(), "as_of_date": as_of,
        "action": "retention", "offer_code": rows["offer_code"].to_numpy(),
        "channel": rows["offer_code"].map({"COUPON10": "email", "COUPON15": "email", "COUPON20": "sms",
                                           "RECO_MSG": "email", "SERVICE_CALL": "phone"}).to_numpy(),
        "recommended_products": [["P000001"]] * n, "is_control": rows["is_control"].to_numpy(bool),
        "priority_rank": np.arange(1, n + 1), "reason_summary": "test",
        "assignment": np.where(rows["is_control"], "control", "targeted"), "propensity": 0.8,
    })
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    return path


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def rows_before(folder: Path, day: dt.date) -> dict[str, set]:
    """Every source's rows dated before ``day`` (order_items through their orders).

    A ticket still open then may be resolved later: its resolution is the future, not the past.
    """
    out = {}
    for name, source in SOURCES.items():
        ts = source.ts_column
        path = folder / f"{name}.parquet"
        if name == "support_tickets":
            sql = (f"SELECT * REPLACE (if(resolved_ts < DATE '{day}', resolved_ts, NULL) AS resolved_ts, "
                   f"if(resolved_ts < DATE '{day}', satisfaction, NULL) AS satisfaction) "
                   f"FROM '{path}' WHERE {ts} < DATE '{day}'")
        elif name == "order_items":
            sql = (f"SELECT i.* FROM '{path}' i JOIN '{folder}/orders.parquet' o USING (order_id) "
                   f"WHERE o.order_ts < DATE '{day}'")
        elif ts:
            sql = f"SELECT * FROM '{path}' WHERE {ts} < DATE '{day}'"
        else:
            sql = f"SELECT * FROM '{path}'"
        out[name] = set(duckdb.sql(sql).fetchall())
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    generate(out, customers=N, seed=SEED, end_date=END, history_days=HISTORY)
    return out


@pytest.fixture(scope="module")
def campaign(shop, tmp_path_factory) -> pd.DataFrame:
    """600 customers with an order by END: every offer, a fifth held out."""
    active = duckdb.sql(f"SELECT DISTINCT customer_id FROM '{shop}/orders.parquet' ORDER BY 1").df()
    rng = np.random.default_rng(1)
    rows = active.sample(600, random_state=1).reset_index(drop=True)
    rows["offer_code"] = rng.choice(["COUPON10", "COUPON15", "COUPON20", "RECO_MSG", "SERVICE_CALL"], 600)
    rows["is_control"] = rng.random(600) < 0.2
    return rows


@pytest.fixture(scope="module")
def simulated(shop, campaign, tmp_path_factory) -> tuple[Path, Path]:
    """(with the campaign, with an empty campaign file), both continued to UNTIL."""
    tmp = tmp_path_factory.mktemp("sim")
    with_campaign, empty = tmp / "with", tmp / "empty"
    simulate(shop, [crm_file(tmp / "c.parquet", campaign)], UNTIL, with_campaign)
    simulate(shop, [crm_file(tmp / "e.parquet", campaign.iloc[:0])], UNTIL, empty)
    return with_campaign, empty


# ---- the empty campaign ----------------------------------------------------------------------------


def test_empty_campaign_leaves_the_shop_as_the_plain_generator_makes_it(shop, campaign, simulated, tmp_path):
    # to the generator's own end date: byte for byte the generator's files
    simulate(shop, [crm_file(tmp_path / "e.parquet", campaign.iloc[:0])], END, tmp_path / "same")
    assert hashes(tmp_path / "same") == hashes(shop) and len(hashes(shop)) == len(SOURCES)
    # continued: an empty file is no file at all, and the past is the generator's
    simulate(shop, None, UNTIL, tmp_path / "none")
    _, empty = simulated
    assert hashes(tmp_path / "none") == hashes(empty)
    assert rows_before(empty, END + dt.timedelta(days=1)) == rows_before(shop, END + dt.timedelta(days=1))
    last = duckdb.sql(f"SELECT max(order_ts) FROM '{empty}/orders.parquet'").fetchall()[0][0]
    assert END < last.date() <= UNTIL


# ---- a campaign --------------------------------------------------------------------------------------


def test_campaign_changes_only_the_future_and_is_logged_as_given(simulated, campaign):
    with_campaign, empty = simulated
    contact_day = END + dt.timedelta(days=1)
    assert rows_before(with_campaign, contact_day) == rows_before(empty, contact_day)
    after = [f"SELECT customer_id, order_ts FROM '{d}/orders.parquet' WHERE order_ts >= DATE '{contact_day}'"
             for d in (with_campaign, empty)]
    assert set(duckdb.sql(after[0]).fetchall()) != set(duckdb.sql(after[1]).fetchall())

    logged = duckdb.sql(f"SELECT * FROM '{with_campaign}/campaign_contacts.parquet' "
                        f"WHERE campaign_id = '{CAMPAIGN}'").df()
    merged = logged.merge(campaign, on="customer_id", suffixes=("", "_file"), validate="1:1")
    assert len(merged) == len(campaign)
    assert (merged["offer_code"] == merged["offer_code_file"]).all()
    assert (merged["is_control"] == merged["is_control_file"]).all()
    assert set(merged["channel"]) == {"email", "sms", "phone"}
    assert (merged["contact_ts"].dt.date == contact_day).all()


def test_truth_reflects_each_customers_effect(shop, simulated, campaign):
    from ml.synth.campaigns import contact_effect
    from ml.synth.dynamics import simulate as run_days
    from ml.synth.generate import build_world
    from ml.synth.offers import OFFER_CHANNEL, OFFERS, channel_index
    from ml.synth.params import MODEL

    with_campaign, _ = simulated
    truth = read_campaign_truth(with_campaign, CAMPAIGN)
    active = duckdb.sql(f"SELECT count(DISTINCT customer_id) FROM '{shop}/orders.parquet'").fetchall()[0][0]
    assert len(truth) == 5 * active and set(truth["offer_code"]) == set(OFFERS)
    # what each listed customer actually got is recorded beside the truth
    got = truth[truth["received_offer"].notna()].drop_duplicates("customer_id")
    assert len(got) == len(campaign) and set(got["assignment"]) == {"targeted", "control"}
    # the dropped-out are lost causes: nothing saves them
    dead = truth[~truth["is_alive"]]
    assert len(dead) and (dead["p_stay_if_treated"] == 0).all() and (dead["p_stay_if_not"] == 0).all()

    # the latent effect tau, recomputed from the replayed state, has the truth's sign
    cal, rng, _, people, ids = build_world(N, SEED, END, None, 90, HISTORY, MODEL, until=UNTIL)
    day = cal.day_of(END)
    state = run_days(people, cal, MODEL, rng["simulation"], {day}).snapshots[day]
    index = pd.Index(ids.to_pylist())
    alive = truth[truth["is_alive"]]
    rows = index.get_indexer(alive["customer_id"])
    offer = alive["offer_code"].map({o: i for i, o in enumerate(OFFERS)}).to_numpy(np.int8)
    channel = channel_index(list(OFFER_CHANNEL))[offer]
    tau = contact_effect(people.subset(rows), state.take(rows), day, offer, channel, MODEL)
    dog = people.dog[rows] == 1
    effect = alive["true_effect"].to_numpy()
    # outside the sleeping dogs tau >= 0, and the truth moves with it: more tau, more staying
    # (unless a stronger treatment still acts: a weaker contact does not cancel it)
    clear = ~dog & (tau > 0.05) & (state.camp_until[rows] <= day)
    assert clear.sum() > 500 and (effect[clear] > 0).all()
    assert (np.abs(effect[~dog & (tau == 0)]) < 1e-9).all()
    # sleeping dogs exist, are harmed by most offers, and are the only ones harmed
    # (a dog's contact can also sour the shop's next one: its effect need not follow tau's sign)
    harmed = effect < -0.001
    assert 0.02 < harmed.mean() < 0.3
    assert dog[harmed].all() and (effect[dog & (tau < -0.05)] < 0).mean() > 0.9


def test_the_literatures_patterns_hold(simulated):
    """Coupons pay off more for the price-sensitive and more for bigger coupons."""
    with_campaign, _ = simulated
    from ml.synth.generate import build_world
    from ml.synth.params import MODEL

    truth = read_campaign_truth(with_campaign, CAMPAIGN)
    alive = truth[truth["is_alive"]].pivot(index="customer_id", columns="offer_code", values="true_effect")
    assert alive["COUPON10"].mean() < alive["COUPON15"].mean() < alive["COUPON20"].mean()
    *_, people, ids = build_world(N, SEED, END, None, 90, HISTORY, MODEL)
    ps = pd.Series(people.price_sensitivity, index=ids.to_pylist()).reindex(alive.index)
    assert np.corrcoef(ps, alive["COUPON15"])[0, 1] > 0.2


def test_unknown_customer_or_offer_fails_with_one_clear_line(shop, campaign, tmp_path):
    bad_id = campaign.head(3).assign(customer_id=["0000000", "0000001", campaign["customer_id"].iloc[0]])
    with pytest.raises(ValueError) as err:
        simulate(shop, [crm_file(tmp_path / "ids.parquet", bad_id)], UNTIL, tmp_path / "x")
    assert "unknown customer_id 0000000 (and 1 more)" in str(err.value) and "\n" not in str(err.value)
    assert "ids.parquet" in str(err.value)
    bad_offer = campaign.head(3).assign(offer_code=["COUPON10", "FREEBEER", "COUPON10"])
    with pytest.raises(ValueError) as err:
        simulate(shop, [crm_file(tmp_path / "offer.parquet", bad_offer)], UNTIL, tmp_path / "y")
    assert "unknown offer_code FREEBEER" in str(err.value) and "\n" not in str(err.value)


def test_cycles_keep_the_past_and_judge_against_the_truth(shop, simulated, campaign, tmp_path):
    """A second cycle passes only its new file: the first campaign stays applied, the past stays."""
    with_campaign, _ = simulated
    second = campaign.sample(200, random_state=2).assign(offer_code="COUPON15", is_control=False)
    until2 = UNTIL + dt.timedelta(days=30)
    second_file = crm_file(tmp_path / "c2.parquet", second, "CW-2", UNTIL)
    simulate(with_campaign, [second_file], until2, tmp_path / "c2")
    assert rows_before(tmp_path / "c2", UNTIL + dt.timedelta(days=1)) == rows_before(
        with_campaign, UNTIL + dt.timedelta(days=1))
    truths = (tmp_path / "c2" / "_truth" / "campaigns").glob("*.parquet")
    assert {CAMPAIGN, "CW-2"} <= {p.stem for p in truths}

    truth = read_campaign_truth(tmp_path / "c2", "CW-2")
    budget = truth["customer_id"].nunique() // 10
    oracle = judge(truth, oracle_assignment(truth, budget))
    rand = judge(truth, random_assignment(truth, budget))
    assert oracle["per_1000_offers"] > rand["per_1000_offers"] + 50
    assert oracle["sleeping_dogs"] == oracle["lost_causes"] == 0 < rand["lost_causes"]
    assert judge(truth, {})["contacts"] == 0


# ---- the command ---------------------------------------------------------------------------------


def test_the_simulate_command_applies_a_campaign_file_and_names_a_bad_one(shop, campaign, simulated, tmp_path):
    from helpers.run import churnwatch

    with_campaign, _ = simulated
    good = crm_file(tmp_path / "c.parquet", campaign)
    churnwatch("simulate", "--shop", str(shop), "--campaign", str(good), "--until", UNTIL.isoformat(),
               "--out", str(tmp_path / "cli"))
    assert hashes(tmp_path / "cli") == hashes(with_campaign)  # the command is the function
    bad = crm_file(tmp_path / "bad.parquet", campaign.head(3).assign(offer_code="FREEBEER"))
    proc = churnwatch("simulate", "--shop", str(shop), "--campaign", str(bad), "--until", UNTIL.isoformat(),
                      "--out", str(tmp_path / "bad"), check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("churnwatch simulate: error:")
    assert "unknown offer_code FREEBEER" in proc.stderr
