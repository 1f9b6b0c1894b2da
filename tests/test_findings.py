"""The notebooks' "What we found" text: every number comes from the frames given."""

from __future__ import annotations

import math

import pandas as pd

from mccom_core.cascade.policies import DEFAULT_THRESHOLDS, summary
from mccom_core.lab import findings
from mccom_core.lab.study import observations
from tests.notebook_helpers import cascade_rows


def test_quickstart_counts_and_times():
    frame = pd.DataFrame({
        "model": ["s", "s", "l", "l"], "line": [1, 2, 1, 2], "exact_match": [True, False, True, True],
        "prefill_ms": [1000.0, 3000.0, 4000.0, 6000.0], "decode_ms": [1000.0, 1000.0, 2000.0, 2000.0]})
    trace = pd.DataFrame({"answered_by": ["s", "l"], "total_ms": [2000.0, 12000.0], "exact_match": [True, True]})
    text = findings.quickstart(frame, trace, 0.7)
    assert "On 2 sampled lines" in text
    assert "`s`: exact match on 1 of 2 lines, median 3.00 s per line, of which prefill (reading the prompt) 67 %" in text
    assert "`l`: exact match on 2 of 2 lines, median 7.00 s per line, of which prefill (reading the prompt) 71 %" in text
    assert "threshold 0.70 kept 1 of 2 lines on the local model; mean time per line 7.00 s against 7.00 s" in text
    assert findings.quickstart(frame.iloc[:0], trace, 0.5).startswith("No line")


def test_observations_against_the_paper():
    obs = observations(cascade_rows())
    text = findings.observations(obs)
    for row in obs.itertuples():
        if not math.isnan(row.measured):
            assert f"{row.measured:.1f} % here vs {row.paper:.1f} % in the paper ({row.measured - row.paper:+.1f} points" in text
    nan = obs.assign(measured=float("nan"))
    assert findings.observations(nan).count("not measured") == len(obs)


def test_cascade_numbers_are_the_tables():
    table = summary(pd.DataFrame(cascade_rows()), DEFAULT_THRESHOLDS)
    text = findings.cascade(table, "warm")
    m = table[(table.policy == "mccom") & (table.accounting == "warm")].iloc[0]
    assert f"best threshold ({m['threshold']:.2f}), warm latency" in text
    assert f"mean latency {m['latency_vs_llm_pct']:+.1f} % (paper -25.6 %)" in text
    assert f"cloud calls {m['llm_calls_vs_llm_pct']:+.1f} % (paper -46.3 %)" in text
    assert f"cloud calls on {100 * m['llm_share']:.0f} % of tasks" in text
    assert "nothing to compare" in findings.cascade(table[table.policy != "mccom"], "warm")


def test_cascade_says_when_the_gate_adds_nothing():
    base = {"threshold": 0.0, "accounting": "warm", "n": 10, "em": 0.5, "mean_ms": 1000.0, "llm_share": 0.6,
            "latency_vs_llm_pct": -30.0, "llm_calls_vs_llm_pct": -40.0, "em_vs_llm_pct": 5.0,
            "em_below_oracle": 0.0, "ms_above_oracle": 0.0}
    table = pd.DataFrame([{**base, "policy": "mccom"}, {**base, "policy": "rejection-only"},
                          {**base, "policy": "always-llm", "mean_ms": 1500.0, "em": 0.45}])
    text = findings.cascade(table, "warm")
    assert "MCCom equals rejection-only" in text and "MCCom reaches the oracle" in text
    table.loc[0, ["mean_ms", "em_below_oracle", "ms_above_oracle"]] = [900.0, 0.02, 100.0]
    text = findings.cascade(table, "warm")
    assert "changes mean latency by -10.0 % against rejection-only" in text
    assert "2.0 points of exact match and 0.10 s of mean latency better" in text


def test_speculative_best_method_and_exactness():
    sp = pd.DataFrame([
        {"role": "slm", "method": "plain", "n": 4, "post_prefill_speedup": 1.0, "total_speedup": 1.0, "identical": 1.0, "n_no_decode": 0},
        {"role": "slm", "method": "a", "n": 4, "post_prefill_speedup": 1.5, "total_speedup": 1.2, "identical": 1.0, "n_no_decode": 0},
        {"role": "slm", "method": "b", "n": 4, "post_prefill_speedup": 0.8, "total_speedup": 0.9, "identical": 1.0, "n_no_decode": 0},
        {"role": "llm", "method": "stage2", "n": 3, "post_prefill_speedup": 2.0, "total_speedup": 1.1, "identical": 0.5, "n_no_decode": 1},
    ])
    acc = pd.DataFrame([{"method": "a", "acceptance": 0.25, "tokens_per_pass": 1.3}])
    text = findings.speculative(sp, acc)
    assert "local model, best method `a`: 1.50x after the prompt's prefill, 1.20x end to end (medians over 4 lines)" in text
    assert "slower than plain greedy here: `b`" in text
    assert "NOT always identical" in text and "on 1 of 3 lines" in text
    assert "`a` accepts 25 % of drafted tokens (1.30 tokens per pass)" in text


def test_retrieval_round_two_against_round_one():
    ablation = pd.DataFrame([
        {"setting": "none", "role": "llm", "n": 5, "em": 0.2}, {"setting": "round 1", "role": "llm", "n": 5, "em": 0.4},
        {"setting": "fused round 2 (MCCom)", "role": "llm", "n": 5, "em": 0.6},
        {"setting": "RepoCoder round 2", "role": "llm", "n": 5, "em": 0.4}])
    makeup = pd.DataFrame([{"retriever": "round1", "visible_left_share": 0.5, "truth_in_block": 0.2}])
    text = findings.retrieval(ablation, makeup)
    assert "cloud exact match: none 20.0 %, round 1 40.0 %" in text
    assert "fused round 2 (MCCom) beats round 1 for the cloud model by 20.0 points" in text
    assert "RepoCoder round 2 ties round 1 for the cloud model (" in text
    assert "`round1`: 50 % of retrieved windows" in text and "on 20 % of tasks" in text


def test_timing_alignment_gives_both_figures():
    def table(pct):
        return pd.DataFrame([{"policy": "mccom", "accounting": "warm", "latency_vs_llm_pct": pct},
                             {"policy": "mccom", "accounting": "cold", "latency_vs_llm_pct": 99.0}])
    text = findings.timing_alignment(table(-23.2), table(-32.0), 385, "warm")
    assert "385 tasks have branches timed in different sessions" in text
    assert "-32.0 % aligned, -23.2 % as measured (raw)" in text
    assert findings.timing_alignment(table(-1.0), table(-1.0), 0, "warm").startswith("Every task's branches")
    assert "no MCCom row" in findings.timing_alignment(table(-1.0).iloc[:0], table(-1.0), 3, "warm")
