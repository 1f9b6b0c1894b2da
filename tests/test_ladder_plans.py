"""Plan enumeration, evaluation, Pareto fronts and cost savings on hand-made numbers."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from mccom_core.errors import MccomError
from mccom_core.ladder.cost import check_throughput_formula, cost_table, read_throughput
from mccom_core.ladder.configs import AUTHORS, PROJECT, get_config, parse_prices
from mccom_core.ladder.plans import (OutcomeArrays, Plan, Rung, enumerate_plans, evaluate_plans, pareto_mask,
                                     plan_costs, run_plans, search, split_problems)
from mccom_core.ladder.savings import (authors_savings, authors_window_savings, project_savings, savings,
                                       savings_table)


def test_pareto_mask_on_hand_made_points():
    cost = [1, 2, 3, 2, 4, 1, 0.5]
    score = [0.5, 0.6, 0.6, 0.4, 0.9, 0.5, 0.1]
    # (1, .5) twice: duplicates both kept; (3, .6) dominated by (2, .6); (2, .4) by (1, .5)
    assert pareto_mask(cost, score).tolist() == [True, True, False, False, True, True, True]


def test_pareto_mask_ignores_float_noise_in_equal_pass_rates():
    # 0.1 + 0.7 != 0.8 in floats; the dearer plan with "the same" pass@1 is not on the front
    assert pareto_mask([1.0, 2.0], [0.8, 0.1 + 0.7]).tolist() == [True, False]


def test_enumerate_plans_counts_and_shapes():
    plans = enumerate_plans(2, [(0, 0), (1, 2), (2, 2)], thetas=(0.5,))
    singles = [p for p in plans if p.singular]
    assert len(singles) == 4  # 2 models x (k0, k2): a last rung never has k = 1
    assert len(plans) == 4 + 2 * 2  # first rung needs tests (2 options) x last rung (2)
    assert Plan((Rung(1, 2, 0.5), Rung(0, 0))) in plans
    assert Plan((Rung(0, 0, 0.5), Rung(0, 0))) not in plans  # an untested early rung
    assert Plan((Rung(2, 2, 0.5), Rung(1, 2))) not in plans  # k = 1 last, as the authors' is_valid_combination
    assert Plan((Rung(2, 2, 0.5), Rung(1, 2))).label(("S", "L")) == "S(k2,l2,θ0.5) > L(k1,l2)"


def frame_for_two_rungs() -> pd.DataFrame:
    """Models S and L with options k0 and (k2, l2) on 4 problems, 1 run."""
    rows = []
    for n in range(4):
        rows.append(("S", 0, 0, 0, n, 0, 0, 0, int(n == 0), 10))
        rows.append(("S", 2, 2, 0, n, [4, 0, 4, 1][n], 4, [4, 0, 4, 1][n], [1, 0, 1, 0][n], 20))
        rows.append(("L", 0, 0, 0, n, 0, 0, 0, 1, 10))
        rows.append(("L", 2, 2, 0, n, 4, 4, 4, 1, 30))
    return pd.DataFrame(rows, columns=["model", "k", "l", "run", "number", "passing", "total",
                                       "best_product", "correct", "tokens"])


def test_evaluate_plans_exact_cost_and_pass():
    arr = OutcomeArrays.from_frame(frame_for_two_rungs(), ("S", "L"))
    plans = [Plan((Rung(2, 2, 0.5), Rung(0, 0))), Plan((None, Rung(0, 0))), Plan((Rung(0, 0), None)),
             Plan((Rung(2, 2, 0.0), Rung(0, 0)))]
    cost, score = evaluate_plans(arr, plans, {"S": 1.0, "L": 10.0})
    # theta .5: passing > 2 adopts problems 0 and 2 (both correct); 1 and 3 go to L (correct)
    assert cost[0].tolist() == [20, 120, 20, 120]
    assert score[0].tolist() == [1, 1, 1, 1]
    assert cost[1].tolist() == [100] * 4 and score[1].tolist() == [1] * 4
    assert cost[2].tolist() == [10] * 4 and score[2].tolist() == [1, 0, 0, 0]
    # theta 0: passing > 0 also adopts problem 3 (wrong)
    assert cost[3].tolist() == [20, 120, 20, 20] and score[3].tolist() == [1, 1, 1, 0]


def test_authors_code_rule_changes_the_outcome():
    arr = OutcomeArrays.from_frame(frame_for_two_rungs(), ("S", "L"))
    plan = [Plan((Rung(2, 2, 1.0), Rung(0, 0)))]
    _, readme = evaluate_plans(arr, plan, {"S": 1.0, "L": 10.0}, rule="readme")
    cost, code = evaluate_plans(arr, plan, {"S": 1.0, "L": 10.0}, rule="authors-code")
    assert cost[0].tolist() == [20, 120, 20, 120]  # a*t = 4 >= 4 * 1.0 on problems 0 and 2
    assert readme[0].tolist() == code[0].tolist() == [1, 1, 1, 1]
    with pytest.raises(MccomError, match="unknown acceptance rule"):
        evaluate_plans(arr, plan, {"S": 1.0, "L": 10.0}, rule="nope")


def test_split_matches_the_authors_random_sample():
    val, test = split_problems(164, seed=7)
    assert val.tolist() == sorted(random.Random(7).sample(range(164), 49))
    assert len(test) == 115 and not set(val) & set(test)


def test_search_rows_are_consistent_with_evaluation():
    arr = OutcomeArrays.from_frame(frame_for_two_rungs(), ("S", "L"))
    fronts = search(arr, {"S": 1.0, "L": 10.0}, seeds=(1,), thetas=(0.5,), val_frac=0.5)
    val, test = split_problems(4, 1, 0.5)
    plans = enumerate_plans(2, arr.options, (0.5,))
    cost, score = evaluate_plans(arr, plans, {"S": 1.0, "L": 10.0})
    labels = [p.label(("S", "L")) for p in plans]
    for _, row in fronts.iterrows():
        i = labels.index(row["plan"])
        assert row["val_cost"] == pytest.approx(cost[i, val].mean())
        assert row["test_cost"] == pytest.approx(cost[i, test].mean())
        assert row["test_pass@1"] == pytest.approx(score[i, test].mean())
    # every single-model plan is listed in each theta group; front flags say which fronts hold it
    singles = {p.label(("S", "L")) for p in plans if p.singular}
    for theta in (0.5, "all"):
        assert set(fronts.loc[fronts["singular"] & (fronts["theta"] == theta), "plan"]) == singles
    assert (fronts.loc[~fronts["singular"], "cascade_front"]).all()
    assert fronts["single_front"].any() and fronts["cascade_front"].any()
    assert fronts.attrs["config"]["n_plans"] == len(plans)


def test_fronts_have_no_duplicate_rows_even_for_repeated_seeds_and_thetas(tmp_path):
    arr = OutcomeArrays.from_frame(frame_for_two_rungs(), ("S", "L"))
    fronts = search(arr, {"S": 1.0, "L": 10.0}, seeds=(1, 1, 2), thetas=(0.5, 0.5, 0.0), val_frac=0.5)
    assert not fronts.duplicated(["seed", "theta", "plan"]).any()
    assert sorted(fronts["seed"].unique()) == [1, 2]
    assert list(dict.fromkeys(fronts["theta"])) == [0.5, 0.0, "all"]
    fronts.to_csv(tmp_path / "f.csv", index=False)
    assert not pd.read_csv(tmp_path / "f.csv").duplicated().any()


def hand_made_front() -> pd.DataFrame:
    """Seed 0, theta 0.5 and pooled: single models L (100, .80), M (40, .70), S (10, .50), S2 (30, .505);
    cascade front plans A (70, .80), B (5, .50), C (50, .703), D (20, .90)."""
    cols = ["seed", "theta", "plan", "singular", "cascade_front", "single_front", "test_cost", "test_pass@1"]
    rows = []
    for theta in (0.5, "all"):
        rows += [(0, theta, "L", True, False, True, 100.0, 0.80), (0, theta, "M", True, False, True, 40.0, 0.70),
                 (0, theta, "S", True, False, True, 10.0, 0.50), (0, theta, "S2", True, False, False, 30.0, 0.505),
                 (0, theta, "A", False, True, False, 70.0, 0.80), (0, theta, "B", False, True, False, 5.0, 0.50),
                 (0, theta, "C", False, True, False, 50.0, 0.703), (0, theta, "D", False, True, False, 20.0, 0.90)]
    return pd.DataFrame(rows, columns=cols)


def test_project_savings_per_theta_on_a_hand_made_front():
    s = project_savings(hand_made_front())
    assert s["theta"].tolist() == [0.5, "all"]
    row = s.iloc[0]
    # L (.80): cheapest plan with pass >= .80 is D (20) -> 0.8; M (.70): D again -> 0.5; S (.50): B (5) -> 0.5
    assert row["best_single_plan"] == "L"
    assert row["saving_at_best_single"] == pytest.approx(0.8)
    assert row["mean_saving"] == pytest.approx((0.8 + 0.5 + 0.5) / 3)
    assert row["max_saving"] == pytest.approx(0.8) and row["n_single_points"] == 3


def test_authors_savings_on_a_hand_made_front():
    s = authors_savings(hand_made_front()).iloc[0]
    # A (.80): singles within +-0.5 points: L only -> 1 - 70/100 = 0.3
    # B (.50): S (.50) and S2 (.505, off the single front but a single model) -> 1 - 5/20 = 0.75
    # C (.703): M (.70) -> 1 - 50/40 = -0.25 (dearer than the single model)
    # D (.90): no single model within 0.5 points -> left out
    assert s["average_saving"] == pytest.approx((0.3 + 0.75 - 0.25) / 3)
    assert (s["max_saving"], s["min_saving"]) == (pytest.approx(0.75), pytest.approx(-0.25))
    assert (s["n_front_points"], s["n_compared"]) == (4, 3)
    window = authors_window_savings([5.0], [0.5], [10.0, 30.0, 90.0], [0.5, 0.505, 0.5051])
    assert window.tolist() == pytest.approx([0.75])  # 50.51% lies outside 50% +- 0.5
    table = savings_table(hand_made_front())
    assert table["authors_average_saving"].tolist() == pytest.approx([(0.3 + 0.75 - 0.25) / 3] * 2)
    assert savings(hand_made_front(), "authors").equals(authors_savings(hand_made_front()))
    with pytest.raises(MccomError, match="unknown savings metric"):
        savings(hand_made_front(), "median")


def test_named_configurations_and_price_based_cost():
    assert AUTHORS.rule == "authors-code" and AUTHORS.seeds == (7,) and AUTHORS.ks == (0, 1, 3, 5, 10)
    assert PROJECT.rule == "readme" and PROJECT.seeds == tuple(range(10)) and PROJECT.ks is None
    assert get_config("authors") is AUTHORS
    with pytest.raises(MccomError, match="unknown ladder configuration"):
        get_config("paper")
    assert AUTHORS.dollars_per_token() == pytest.approx({"7B": 1.91e-6, "13B": 6.65e-6, "34B": 2.024e-5})
    assert PROJECT.dollars_per_token() is None
    assert parse_prices(["S=1", "L=10"]) == {"S": 0.001, "L": 0.01}
    with pytest.raises(MccomError, match="MODEL=DOLLARS_PER_1K_TOKENS"):
        parse_prices(["S:1"])
    # a plan's cost is tokens x price: the 7B greedy answer of 231 tokens costs 231 x $0.00191 / 1k
    frame = pd.DataFrame([(m, 0, 0, 0, 0, 0, 0, 0, 1, t) for m, t in (("7B", 231), ("13B", 226), ("34B", 228))],
                         columns=["model", "k", "l", "run", "number", "passing", "total", "best_product",
                                  "correct", "tokens"])
    arr = OutcomeArrays.from_frame(frame, ("7B", "13B", "34B"))
    dpt = plan_costs(frame, AUTHORS)  # no throughput table needed
    cost, _ = evaluate_plans(arr, [Plan((Rung(0, 0), None, None)), Plan((None, None, Rung(0, 0)))], dpt)
    assert cost[:, 0].tolist() == pytest.approx([231 * 0.00191 / 1000, 228 * 0.02024 / 1000])
    with pytest.raises(MccomError, match="no per-token cost"):
        plan_costs(frame, PROJECT)


def test_run_plans_with_prices_needs_no_throughput(tmp_path):
    outcomes = frame_for_two_rungs()
    outcomes.attrs["source"] = {"models": ["S", "L"]}
    outcomes.to_parquet(tmp_path / "o.parquet")
    paths = run_plans(tmp_path / "o.parquet", tmp_path / "out", config="authors",
                      cost_per_token=parse_prices(["S=1", "L=10"]), thetas=(0.5,), val_frac=0.5)
    fronts, table = pd.read_csv(paths["fronts"]), pd.read_csv(paths["savings"])
    assert not fronts.duplicated(["seed", "theta", "plan"]).any() and set(fronts["seed"]) == {7}
    assert table["theta"].astype(str).tolist() == ["0.5", "all"]  # per theta, and pooled
    assert {"saving_at_best_single", "authors_average_saving"} <= set(table.columns)


def test_throughput_formula_and_cost_table(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(
        "Model,Num GPUs Occupied,k,max batch,time per batch (s),Cost on full run ($),Relative Cost,Full Set Num\n"
        "7B,2,0,26,18.9,0.0080770,1.0,1000\n,,1,26,29.7,0.0126924,1.6,\n"
        "34B,8,0,32,64.3,0.0893056,11.1,\n")
    table = read_throughput(csv)
    assert check_throughput_formula(table).round(2).tolist() == [45.45, 45.45, 45.45]
    costs = cost_table(table, {"7B": 100.0, "34B": 200.0})
    per_sample_7b = 2 * 0.44 / 3600 * 18.9 / 26
    per_sample_34b = 8 * 0.44 / 3600 * 64.3 / 32
    assert costs["dollars_per_token"].tolist() == pytest.approx([per_sample_7b / 100, per_sample_34b / 200])
    assert costs["relative_to_smallest"].tolist() == pytest.approx([1.0, (per_sample_34b / 200) / (per_sample_7b / 100)])
    np.testing.assert_array_equal(costs["gpus"], [2, 8])


def test_split_refuses_an_empty_side():
    with pytest.raises(MccomError, match="empty split"):
        split_problems(2, seed=0, val_frac=0.3)
