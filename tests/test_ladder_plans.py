"""Plan enumeration, evaluation, Pareto fronts and cost savings on hand-made numbers."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from mccom_core.errors import MccomError
from mccom_core.ladder.cost import check_throughput_formula, cost_table, read_throughput
from mccom_core.ladder.plans import (OutcomeArrays, Plan, Rung, cost_savings, enumerate_plans,
                                     evaluate_plans, pareto_mask, search, split_problems)


def test_pareto_mask_on_hand_made_points():
    cost = [1, 2, 3, 2, 4, 1, 0.5]
    score = [0.5, 0.6, 0.6, 0.4, 0.9, 0.5, 0.1]
    # (1, .5) twice: duplicates both kept; (3, .6) dominated by (2, .6); (2, .4) by (1, .5)
    assert pareto_mask(cost, score).tolist() == [True, True, False, False, True, True, True]


def test_enumerate_plans_counts_and_shapes():
    plans = enumerate_plans(2, [(0, 0), (1, 2), (2, 2)], thetas=(0.5,))
    singles = [p for p in plans if p.singular]
    assert len(singles) == 6  # 2 models x 3 options, theta irrelevant
    assert len(plans) == 6 + 2 * 3  # first rung needs tests (2 options) x last rung (3)
    assert Plan((Rung(1, 2, 0.5), Rung(0, 0))) in plans
    assert Plan((Rung(0, 0, 0.5), Rung(0, 0))) not in plans  # an untested early rung
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
    for row in fronts.itertuples():
        i = labels.index(row.plan)
        assert row.val_cost == pytest.approx(cost[i, val].mean())
        assert row.test_cost == pytest.approx(cost[i, test].mean())
        assert getattr(row, "_9") == pytest.approx(score[i, test].mean())  # test_pass@1
    assert set(fronts["front"]) == {"cascade", "single"}
    assert fronts.attrs["config"]["n_plans"] == len(plans)


def test_cost_savings_on_a_hand_made_front():
    fronts = pd.DataFrame([
        # seed 0: single-model points (100, .8) and (10, .5); cascade (70, .8) and (5, .5)
        (0, "all", "single", "L", 100.0, 0.8), (0, "all", "single", "S", 10.0, 0.5),
        (0, "all", "cascade", "S>L", 70.0, 0.8), (0, "all", "cascade", "S'", 5.0, 0.5),
        (0, 0.5, "cascade", "ignored", 1.0, 1.0),
    ], columns=["seed", "theta", "front", "plan", "test_cost", "test_pass@1"])
    s = cost_savings(fronts).iloc[0]
    assert s["best_single_plan"] == "L"
    assert s["saving_at_best_single"] == pytest.approx(0.3)
    assert s["mean_saving"] == pytest.approx((0.3 + 0.5) / 2)
    assert s["max_saving"] == pytest.approx(0.5)


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
