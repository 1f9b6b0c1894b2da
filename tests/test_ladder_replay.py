"""The ladder's arithmetic on inline literal fixtures: lines, selection, acceptance, outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mccom_core.errors import MccomError
from mccom_core.ladder.replay import (ReplayConfig, accept_authors_code, accept_readme, per_model_pass_at_1,
                                     replay, rung_outcomes, select_best, select_test_lines, theta_milli)
from mccom_core.ladder.data import Generations, Problem, read_replay_dir
from mccom_core.ladder.sandbox import SandboxConfig


def test_select_test_lines_keeps_asserts_among_the_first_l_lines():
    block = "assert f(1) == 1\n# comment\nassert f(2) == 2\nassert f(3) == 3\nassert f(4) == 4"
    assert select_test_lines(block, 2) == [(0, "assert f(1) == 1")]
    assert select_test_lines(block, 4) == [(0, "assert f(1) == 1"), (2, "assert f(2) == 2"), (3, "assert f(3) == 3")]
    assert select_test_lines("", 4) == []


@pytest.mark.parametrize(
    "passing,total,theta,expected",
    [
        (0, 0, 0.0, False),  # no tests: 0 > floor(0) is false, never adopted
        (1, 10, 0.0, True),  # 1 > 0
        (3, 10, 0.3, False),  # 3 > floor(3.0) = 3 is false
        (4, 10, 0.3, True),
        (29, 100, 0.29, False),  # floor(100 * 0.29) = 29 exactly (floats say 28)
        (30, 100, 0.29, True),
        (10, 10, 1.0, False),  # theta = 1 never adopts under the README rule
        (8, 12, 0.6, True),  # floor(7.2) = 7
        (7, 12, 0.6, False),
    ],
)
def test_readme_rule(passing, total, theta, expected):
    assert bool(accept_readme(passing, total, 0, theta)) is expected


def test_authors_code_rule_uses_the_best_pair_product():
    # a * t >= total * theta; at theta = 1 a best pair with full row and column adopts
    assert bool(accept_authors_code(0, 12, 12, 1.0)) is True
    assert bool(accept_authors_code(12, 12, 11, 1.0)) is False
    assert bool(accept_authors_code(0, 0, 0, 0.5)) is True  # no tests: 0 >= 0
    np.testing.assert_array_equal(accept_authors_code([0, 0], [10, 10], [5, 4], 0.5), [True, False])


def test_authors_code_rule_multiplies_in_floats_as_their_script():
    # check_combinations.py: confidence >= total_product * threshold, Python floats; on every
    # total the recordings can produce (at most 10 answers x 40 lines) and the 0.1 theta grid
    # that equals exact integer arithmetic
    for theta in [i / 10 for i in range(11)]:
        for total in range(0, 401, 7):
            for best in (0, total // 3, (total * int(theta * 10)) // 10, total):
                exact = best * 10 >= total * round(theta * 10)
                assert bool(accept_authors_code(0, total, best, theta)) is exact, (theta, total, best)


def test_theta_outside_unit_interval_is_refused():
    with pytest.raises(MccomError, match="theta"):
        theta_milli(1.5)


def test_select_best_dual_agreement():
    m = np.array([[1, 0, 0],
                  [1, 1, 0],
                  [0, 1, 1]], dtype=bool)
    # row sums 1,2,2; column sums 2,2,1; products of passing pairs:
    # (0,0)=2 (1,0)=4 (1,1)=4 (2,1)=4 (2,2)=2 -> first maximum is row 1
    assert select_best(m) == (1, 4)
    assert select_best(m, "first") == (1, 4)  # the fallback matters only when no pair passes


def test_select_best_falls_back_to_the_last_solution_as_the_authors():
    assert select_best(np.zeros((3, 2), dtype=bool)) == (2, 0)  # find_max_product's -1 index
    assert select_best(np.zeros((3, 2), dtype=bool), "first") == (0, 0)
    assert select_best(np.zeros((1, 0), dtype=bool)) == (0, 0)
    assert select_best(np.zeros((0, 0), dtype=bool)) == (0, 0)
    with pytest.raises(MccomError, match="unknown fallback"):
        select_best(np.zeros((2, 2), dtype=bool), "random")


def hand_made_rung():
    """One problem, two sampled solutions (the first wrong, the second right), two test blocks whose
    assert lines both solutions fail: no passing pair. Verdicts written by hand, nothing executed."""
    problem = Problem(0, "Toy/0", "def f(x):\n", "f", "def check(candidate):\n    assert candidate(1) == 2\n")
    frame = pd.DataFrame([("S", 0, 0, s, f"def f(x):\n    return x + {s}\n", 10, "assert f(1) == 9", 4, 4)
                          for s in (0, 1)], columns=["model", "run", "number", "sample", "answer", "answer_tokens",
                                                     "tests", "test_tokens_2", "test_tokens_4"])
    verdicts = {("S", 0, 0): {"hidden": {0: False, 1: True}, "reasons": {0: "AssertionError", 1: "passed"},
                              "pairs": {(0, "assert f(1) == 9"): False, (1, "assert f(1) == 9"): False}}}
    return Generations({0: problem}, frame, ("S",)), verdicts


@pytest.mark.parametrize("fallback,chosen,correct", [("last", 1, True), ("first", 0, False)])
def test_rung_with_no_passing_pair_names_the_fallback_solution(fallback, chosen, correct):
    gens, verdicts = hand_made_rung()
    out = rung_outcomes(gens, verdicts, ReplayConfig(k_grid=(2,), l_grid=(2,), fallback=fallback))
    row = out.iloc[0]
    # one assert line in each of the two blocks: a 2 x 2 matrix with no passing pair
    assert (row.k, row.l, row.passing, row.total, row.best_product) == (2, 2, 0, 4, 0)
    assert (row.chosen, bool(row.correct)) == (chosen, correct)
    assert row.tokens == 10 + 10 + 4 + 4
    # the authors' rule adopts it only at theta = 0 (0 >= 4 * 0), the README rule never
    assert bool(accept_authors_code(row.passing, row.total, row.best_product, 0.0)) is True
    assert bool(accept_authors_code(row.passing, row.total, row.best_product, 0.1)) is False
    assert bool(accept_readme(row.passing, row.total, row.best_product, 0.0)) is False


# -- a two-model ladder written in the authors' layout ------------------------------------

PROBLEMS = [
    {"task_id": "Toy/0", "prompt": "def inc(x):\n", "entry_point": "inc",
     "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(5) == 6\n"},
    {"task_id": "Toy/1", "prompt": "def neg(x):\n", "entry_point": "neg",
     "test": "def check(candidate):\n    assert candidate(2) == -2\n"},
]
GOOD = {0: "def inc(x):\n    return x + 1\n", 1: "def neg(x):\n    return -x\n"}
BAD = {0: "def inc(x):\n    return x\n", 1: "def neg(x):\n    return x\n"}
TESTS = {0: "assert inc(1) == 2\nassert inc(3) == 4\nassert inc(0) == 1\nassert inc(9) == 10",
         1: "assert neg(1) == -1\nassert neg(0) == 0\nassert neg(3) == -3\nassert neg(2) == -2"}
WRONG_TESTS = {0: "assert inc(1) == 1\nassert inc(2) == 2", 1: "assert neg(1) == 1\nassert neg(2) == 2"}


def write_ladder(root, answers, tests):
    """answers/tests: {model: {run: {number: [text per sample]}}}, run -1 = greedy."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "HumanEval.json").write_text(json.dumps(PROBLEMS))
    for kind, table in (("answer", answers), ("testcase", tests)):
        for model, runs in table.items():
            (root / kind / model).mkdir(parents=True)
            for run, per_problem in runs.items():
                recs = []
                for number, texts in per_problem.items():
                    for s, text in enumerate(texts):
                        rec = {"number": number, "pass": s, "answer": text}
                        if kind == "answer":
                            rec["num_ids"] = 10 * (s + 1)
                        else:
                            rec["num_ids_2"], rec["num_ids_4"] = 3, 5
                        recs.append(rec)
                stem = "p0_l0" if run < 0 else f"p2_l{run}"
                (root / kind / model / f"{model}_{stem}.json").write_text(json.dumps(recs))
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    answers = {
        # small model: greedy wrong on problem 1; its samples disagree
        "S": {-1: {0: [GOOD[0]], 1: [BAD[1]]}, 0: {0: [GOOD[0], BAD[0]], 1: [BAD[1], BAD[1]]}},
        "L": {-1: {0: [GOOD[0]], 1: [GOOD[1]]}, 0: {0: [GOOD[0], GOOD[0]], 1: [GOOD[1], GOOD[1]]}},
    }
    tests = {
        "S": {-1: {0: [TESTS[0]], 1: [WRONG_TESTS[1]]}, 0: {0: [TESTS[0], TESTS[0]], 1: [TESTS[1], TESTS[1]]}},
        "L": {-1: {0: [TESTS[0]], 1: [TESTS[1]]}, 0: {0: [TESTS[0], TESTS[0]], 1: [TESTS[1], TESTS[1]]}},
    }
    write_ladder(root, answers, tests)
    gens = read_replay_dir(root, models=("S", "L"), runs=1, samples=2)
    cfg = ReplayConfig(k_grid=(0, 1, 2), l_grid=(0, 2, 4), sandbox=SandboxConfig(timeout_s=1.0, use_cache=False))
    outcomes, verdicts = replay(gens, cfg)
    return gens, outcomes, verdicts


def test_replay_outcomes_exact(toy):
    gens, out, _ = toy
    got = out.set_index(["model", "k", "l", "run", "number"])
    # S, k=2, l=2 on problem 0: answers [GOOD, BAD], lines per block: "inc(1)==2" (first 2 raw
    # lines hold 2 asserts: inc(1)==2, inc(3)==4) -> 2 blocks x 2 lines = 4 columns.
    # GOOD passes all 4, BAD (identity) passes none -> passing 4 of 8.
    row = got.loc[("S", 2, 2, 0, 0)]
    assert (row.passing, row.total, row.best_product, row.chosen, bool(row.correct)) == (4, 8, 4, 0, True)
    assert row.tokens == 10 + 20 + 3 + 3
    # S, k=1, l=4 on problem 1 (greedy BAD answer, greedy WRONG tests, which BAD passes)
    row = got.loc[("S", 1, 4, 0, 1)]
    assert (row.passing, row.total, bool(row.correct)) == (2, 2, False)
    assert row.tokens == 10 + 5
    # S, k=2, l=4 on problem 1: two BAD answers x 8 lines: neg(0) == 0 passes in both blocks
    row = got.loc[("S", 2, 4, 0, 1)]
    assert (row.passing, row.total, row.best_product, bool(row.correct)) == (4, 16, 4, False)
    # k = 0: the greedy answer, no tests
    row = got.loc[("L", 0, 0, 0, 1)]
    assert (row.passing, row.total, bool(row.correct), row.tokens) == (0, 0, True, 10)
    assert len(out) == 2 * 2 * (1 + 2 + 2)  # models x problems x (k0 + k1 x 2 l + k2 x 2 l)


def test_greedy_correctness_is_recomputed(toy):
    gens, _, verdicts = toy
    table = per_model_pass_at_1(gens, verdicts)
    assert table.set_index("model")["greedy_pass@1"].to_dict() == {"S": 0.5, "L": 1.0}
    assert table.set_index("model")["sampled_pass@1"].to_dict() == {"S": 0.25, "L": 1.0}


def test_malformed_record_is_reported_and_skipped(tmp_path):
    answers = {"S": {-1: {0: [GOOD[0]], 1: [GOOD[1]]}, 0: {0: [GOOD[0]], 1: [GOOD[1]]}}}
    tests = {"S": {-1: {0: [TESTS[0]], 1: [TESTS[1]]}, 0: {0: [TESTS[0]], 1: [TESTS[1]]}}}
    root = write_ladder(tmp_path / "d", answers, tests)
    path = root / "answer" / "S" / "S_p2_l0.json"
    recs = json.loads(path.read_text())
    del recs[1]["num_ids"]
    path.write_text(json.dumps(recs))
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        gens = read_replay_dir(root, models=("S",), runs=1, samples=2)
    assert gens.skipped == ["S_p2_l0.json record 1: KeyError 'num_ids'"]


def test_missing_data_dir_says_what_to_do(tmp_path):
    with pytest.raises(MccomError, match="pass the folder that holds answer/"):
        read_replay_dir(tmp_path / "nowhere")


def test_invalid_json_says_which_file(tmp_path):
    root = write_ladder(tmp_path / "d", {"S": {-1: {0: [GOOD[0]]}}}, {"S": {-1: {0: [TESTS[0]]}}})
    (root / "answer" / "S" / "S_p0_l0.json").write_text("[{")
    with pytest.raises(MccomError, match="S_p0_l0.json is not valid JSON"):
        read_replay_dir(root, models=("S",), runs=0)


def test_outcomes_carry_their_config(toy):
    _, out, _ = toy
    assert out.attrs["config"]["k_grid"] == (0, 1, 2)
    assert out.attrs["source"]["source"] == "replay"
    assert isinstance(out, pd.DataFrame)


def test_cli_replay_then_plans(tmp_path, monkeypatch):
    from mccom_core.cli import main

    monkeypatch.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
    answers = {"S": {-1: {0: [GOOD[0]], 1: [BAD[1]]}, 0: {0: [GOOD[0], BAD[0]], 1: [BAD[1], GOOD[1]]}},
               "L": {-1: {0: [GOOD[0]], 1: [GOOD[1]]}, 0: {0: [GOOD[0], GOOD[0]], 1: [GOOD[1], GOOD[1]]}}}
    tests = {m: {-1: {0: [TESTS[0]], 1: [TESTS[1]]}, 0: {0: [TESTS[0]] * 2, 1: [TESTS[1]] * 2}} for m in "SL"}
    root = write_ladder(tmp_path / "d", answers, tests)
    out = tmp_path / "out"
    cache = tmp_path / "elsewhere" / "verdicts.sqlite"
    assert main(["ladder", "replay", "--data", str(root), "--models", "S", "L", "--runs", "1",
                 "--samples", "2", "--cache", str(cache), "--out", str(out)]) == 0
    assert cache.is_file() and not (tmp_path / "cache").exists()  # the flag, not the environment
    assert pd.read_csv(out / "pass_at_1.csv")["greedy_pass@1"].tolist() == [0.5, 1.0]
    (tmp_path / "cost.json").write_text(json.dumps({"S": 1.0, "L": 10.0}))
    assert main(["ladder", "plans", "--outcomes", str(out / "outcomes.parquet"), "--cost-json",
                 str(tmp_path / "cost.json"), "--seeds", "0", "--thetas", "0.5", "--val-frac", "0.5", "--out", str(out)]) == 0
    fronts = pd.read_csv(out / "fronts.csv")
    assert {"seed", "theta", "plan", "cascade_front", "single_front", "val_cost", "test_pass@1"} <= set(fronts.columns)
    assert not fronts.duplicated(["seed", "theta", "plan"]).any()
    # prices given: no throughput table, the authors' configuration, savings per theta
    assert main(["ladder", "plans", "--outcomes", str(out / "outcomes.parquet"), "--config", "authors",
                 "--prices", "S=0.5", "L=5", "--val-frac", "0.5", "--out", str(tmp_path / "authors")]) == 0
    table = pd.read_csv(tmp_path / "authors" / "savings.csv")
    assert table["theta"].astype(str).tolist() == [f"{i / 10:.1f}" for i in range(11)] + ["all"]
    assert (table["seed"] == 7).all()
    assert main(["ladder", "plans", "--outcomes", str(out / "outcomes.parquet"), "--seeds", "0",
                 "--out", str(tmp_path / "p")]) == 1  # project prices need a throughput table or prices
    assert main(["ladder", "plans", "--outcomes", str(tmp_path / "none.parquet"), "--cost-json",
                 str(tmp_path / "cost.json"), "--out", str(out)]) == 1  # MccomError -> exit 1


def test_codet_jsonl_source(tmp_path):
    from mccom_core.ladder.sources import get_source

    problems = tmp_path / "p.jsonl"
    problems.write_text("\n".join(json.dumps(p) for p in PROBLEMS))
    sols = tmp_path / "s.jsonl"
    sols.write_text(json.dumps({"prompt": "def inc(x):\n", "samples": ["    return x + 1\n", "    return x\n"]})
                    + "\nnot json\n")
    tsts = tmp_path / "t.jsonl"
    tsts.write_text(json.dumps({"prompt": "def inc(x):\n    pass\n\n# check the correctness of inc\nassert ",
                                "samples": ["inc(1) == 2\nassert inc(2) == 3", "inc(0) == 1"]}))
    gens = get_source("codet", problems_file=str(problems), solutions=(("S", str(sols)),),
                      tests=(("S", str(tsts)),)).load()
    assert gens.skipped == ["s.jsonl line 2: JSONDecodeError Expecting value: line 1 column 1 (char 0)"]
    f = gens.frame
    assert f[["run", "sample"]].values.tolist() == [[-1, 0], [0, 0], [0, 1]]
    assert f["answer"].iloc[1] == "def inc(x):\n    return x + 1\n"
    assert f["tests"].iloc[1] == "assert inc(1) == 2\nassert inc(2) == 3"
    assert f["answer_tokens"].iloc[1] == 4  # proxy count: return, x, +, 1
