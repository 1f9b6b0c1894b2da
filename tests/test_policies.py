"""Policies, simulated users, latency accounting and sweeps on a hand-made branch table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mccom_core.errors import MccomError
from mccom_core.papers import MCCOM_HEADLINES
from mccom_core.cascade.metrics import edit_similarity, exact_match
from mccom_core.cascade.policies import (
    POLICIES, CascadeBranches, LatencyModel, best_threshold, paper_comparison, simulate, summary, sweep,
)
from mccom_core.cascade.users import USERS, make_user
from mccom_core.cascade.engine import output_similarity, verbatim_share

# Four tasks. SLM: t1 right & sure, t2 wrong & sure, t3 right & unsure, t4 wrong & unsure.
# LLM direct is wrong on t3 only; the escalation (LLM after rejection) is wrong on t4 only.
GT = {"t1": "a", "t2": "x", "t3": "c", "t4": "y"}
KIND = {"t1": "line", "t2": "line", "t3": "stmt", "t4": "stmt"}
SLM = {"t1": ("a", 0.9, True), "t2": ("b", 0.8, False), "t3": ("c", 0.3, True), "t4": ("d", 0.2, False)}
LLM = {"t1": "a", "t2": "x", "t3": "q", "t4": "y"}
ESC = {"t1": "a", "t2": "x", "t3": "c", "t4": "z"}
LLM_PREFILL = {"t1": 300.0, "t2": 400.0, "t3": 500.0, "t4": 600.0}


def row(task, branch, prediction, *, confidence=0.5, retrieval=0.0, prefill=0.0, decode=0.0,
        warm=None, in_left=False):
    return {
        "task_id": task, "kind": KIND[task], "branch": branch, "ground_truth": GT[task],
        "prediction": prediction, "confidence": confidence,
        "em": exact_match(prediction, GT[task]), "es": edit_similarity(prediction, GT[task]),
        "retrieval_ms": retrieval, "prefill_ms": prefill, "decode_ms": decode - 5.0, "draft_ms": 5.0,
        "warm_prefill_ms": warm[0] if warm else None, "warm_decode_ms": warm[1] if warm else None,
        "warm_draft_ms": 0.0 if warm else None, "output_in_left": in_left,
    }


def results():
    rows = []
    for t in GT:
        text, conf, in_left = SLM[t]
        # SLM: 10 retrieval + 100 prefill + 50 decode = 160 cold; 10 + 10 + 40 = 60 warm.
        rows.append(row(t, "slm", text, confidence=conf, retrieval=10, prefill=100, decode=50,
                        warm=(10, 40), in_left=in_left))
        # LLM direct: 10 + prefill (300..600) + 100.
        rows.append(row(t, "llm", LLM[t], retrieval=10, prefill=LLM_PREFILL[t], decode=100))
        # Escalation: 20 + 300 + 60 = 380.
        rows.append(row(t, "llm_rejected", ESC[t], retrieval=20, prefill=300, decode=60))
    return pd.DataFrame(rows)


def agg(frame, policy, accounting="cold", threshold=None, kind="all"):
    sel = frame[(frame["policy"] == policy) & (frame["accounting"] == accounting) & (frame["kind"] == kind)]
    if threshold is not None:
        sel = sel[sel["threshold"] == threshold]
    assert len(sel) == 1
    return sel.iloc[0]


# --------------------------------------------------------------------------- users


def test_simulated_users():
    exact, prefix = make_user("exact"), make_user("prefix")
    assert exact.accepts("foo(a)  \n", "foo(a)") and not exact.accepts(" foo(a)", "foo(a)")
    assert prefix.accepts("foo(", "foo(a)") and prefix.accepts("foo(a) ", "foo(a)")
    assert not prefix.accepts("", "foo") and not prefix.accepts("  ", "foo") and not prefix.accepts("fob", "foo")
    assert make_user("edit-similarity", min_similarity=0.75).accepts("abcd", "abcf")  # ES 0.75
    assert not make_user("edit-similarity").accepts("abcd", "abcf")  # default 0.8
    assert set(USERS) == {"exact", "edit-similarity", "prefix"}
    with pytest.raises(MccomError, match="unknown simulated user"):
        make_user("lazy")
    with pytest.raises(MccomError, match=r"\[0, 1\]"):
        make_user("edit-similarity", min_similarity=2)


# --------------------------------------------------------------------------- per-task accounting


def test_mccom_per_task_routes_and_latency():
    per = simulate(results(), "mccom", 0.5).set_index("task_id")
    assert per["route"].tolist() == ["slm", "rejected", "withheld", "withheld"]
    assert per["prediction"].tolist() == ["a", "x", "c", "z"]
    assert per["em"].tolist() == [True, True, True, False]
    assert per["llm_call"].tolist() == [False, True, True, True]
    assert per["total_ms"].tolist() == [160.0, 540.0, 540.0, 540.0]
    assert per["first_shown_ms"].tolist() == [160.0, 160.0, 540.0, 540.0]
    assert per["slm_ms"].tolist() == [150.0] * 4
    assert per["llm_ms"].tolist() == [0.0, 360.0, 360.0, 360.0]
    assert per["retrieval_ms"].tolist() == [10.0, 30.0, 30.0, 30.0]
    assert per["prefill_ms"].tolist() == [100.0, 400.0, 400.0, 400.0]
    assert per["decode_ms"].tolist() == [50.0, 110.0, 110.0, 110.0]


def test_network_and_reaction_time():
    latency = LatencyModel("cold", network_ms=50, reaction_ms=1000)
    per = simulate(results(), "mccom", 0.5, latency=latency).set_index("task_id")
    # Only t2 was shown and then rejected: it alone waits for the user's reaction.
    assert per["wait_ms"].tolist() == [0.0, 1000.0, 0.0, 0.0]
    assert per["network_ms"].tolist() == [0.0, 50.0, 50.0, 50.0]
    assert per["total_ms"].tolist() == [160.0, 1590.0, 590.0, 590.0]
    assert per["first_shown_ms"].tolist() == [160.0, 160.0, 590.0, 590.0]
    oracle = simulate(results(), "oracle", latency=latency).set_index("task_id")
    assert oracle["total_ms"].tolist() == [160.0, 590.0, 160.0, 590.0]  # never waits
    rejection = simulate(results(), "rejection-only", latency=latency)
    assert rejection["total_ms"].tolist() == [160.0, 1590.0, 160.0, 1590.0]


def test_warm_accounting_changes_only_the_slm():
    warm = simulate(results(), "mccom", 0.5, latency=LatencyModel("warm"))
    assert warm["total_ms"].tolist() == [60.0, 440.0, 440.0, 440.0]
    always_llm = simulate(results(), "always-llm", latency=LatencyModel("warm"))
    assert always_llm["total_ms"].tolist() == [410.0, 510.0, 610.0, 710.0]


# --------------------------------------------------------------------------- sweep and summary


def test_sweep_exact_numbers():
    frame = sweep(results(), [0.0, 0.5, 1.0])
    # 2 accountings x (4 fixed policies + 2 threshold policies x 3 thresholds).
    assert len(frame) == 2 * (4 + 2 * 3)
    llm = agg(frame, "always-llm")
    assert (llm["em"], llm["mean_ms"], llm["llm_share"]) == (0.75, 560.0, 1.0)
    assert llm["p90_ms"] == pytest.approx(680.0)  # linear: 610 + 0.7 * 100
    assert math.isnan(llm["threshold"])
    slm = agg(frame, "always-slm")
    assert (slm["em"], slm["mean_ms"], slm["llm_share"]) == (0.5, 160.0, 0.0)
    assert agg(frame, "always-slm", "warm")["mean_ms"] == 60.0
    conf = agg(frame, "confidence-only", threshold=0.5)
    assert (conf["em"], conf["mean_ms"], conf["llm_share"]) == (0.5, 350.0, 0.5)
    rej = agg(frame, "rejection-only")
    assert (rej["em"], rej["mean_ms"], rej["llm_share"]) == (0.75, 350.0, 0.5)
    m = {t: agg(frame, "mccom", threshold=t) for t in (0.0, 0.5, 1.0)}
    assert [(m[t]["em"], m[t]["mean_ms"], m[t]["llm_share"]) for t in m] == [
        (0.75, 350.0, 0.5), (0.75, 445.0, 0.75), (0.75, 540.0, 1.0)]
    assert m[0.5]["es"] == pytest.approx(0.75)
    assert m[0.5]["accept_rate"] == 0.75 and m[0.5]["first_shown_ms"] == pytest.approx((160 * 2 + 540 * 2) / 4)
    oracle = agg(frame, "oracle")
    assert (oracle["em"], oracle["mean_ms"], oracle["llm_share"]) == (0.75, 350.0, 0.5)


def test_sweep_by_kind_and_policy_subset():
    frame = sweep(results(), [0.5], policies=["mccom"], accountings=["cold"], by_kind=True)
    assert frame["kind"].tolist() == ["all", "line", "stmt"]
    assert frame["em"].tolist() == [0.75, 1.0, 0.5]
    assert frame["mean_ms"].tolist() == [445.0, 350.0, 540.0]


def test_best_threshold_and_summary():
    frame = sweep(results(), [0.0, 0.5, 1.0])
    assert best_threshold(frame, "mccom", "cold") == 0.0  # fastest at always-LLM's EM
    # confidence-only never reaches always-LLM's EM (0.75): highest EM, then the fastest.
    assert best_threshold(frame, "confidence-only", "cold") == 1.0
    table = summary(results(), [0.0, 0.5, 1.0])
    assert table["policy"].tolist() == list(POLICIES) * 2
    m = table[(table["policy"] == "mccom") & (table["accounting"] == "cold")].iloc[0]
    assert m["threshold"] == 0.0
    assert m["latency_vs_llm_pct"] == pytest.approx(100 * (350 / 560 - 1))
    assert m["llm_calls_vs_llm_pct"] == pytest.approx(-50.0)
    assert m["em_vs_llm_pct"] == 0.0 and m["em_below_oracle"] == 0.0 and m["ms_above_oracle"] == 0.0
    s = table[(table["policy"] == "always-slm") & (table["accounting"] == "warm")].iloc[0]
    assert s["em_vs_llm_pct"] == pytest.approx(100 * (0.5 / 0.75 - 1))
    assert s["em_below_oracle"] == 0.25


def test_user_rule_changes_routing():
    df = results()
    df.loc[(df.task_id == "t2") & (df.branch == "slm"), "prediction"] = ""  # nothing shown: rejected
    df.loc[(df.task_id == "t4") & (df.branch == "slm"), "prediction"] = " "  # idem
    df.loc[(df.task_id == "t1") & (df.branch == "slm"), "prediction"] = "a"
    exact = sweep(df, policies=["rejection-only"], accountings=["cold"])
    prefix = sweep(df, policies=["rejection-only"], accountings=["cold"], user="prefix")
    assert exact["llm_share"].iloc[0] == prefix["llm_share"].iloc[0] == 0.5
    df.loc[(df.task_id == "t2") & (df.branch == "slm"), "prediction"] = "x (partial)"
    df.loc[(df.task_id == "t2"), "ground_truth"] = "x (partial) and more"
    prefix = sweep(df, policies=["rejection-only"], accountings=["cold"], user="prefix")
    assert prefix["llm_share"].iloc[0] == 0.25  # t2's prefix is accepted, only t4 escalates


def test_other_escalation_branch():
    df = results()
    alt = df[df.branch == "llm_rejected"].assign(branch="llm_rejected_repocoder", prediction="w",
                                                 em=False, es=0.0)
    frame = sweep(pd.concat([df, alt]), [0.5], policies=["mccom"], accountings=["cold"],
                  branches=CascadeBranches(escalation="llm_rejected_repocoder"))
    assert frame["em"].iloc[0] == 0.25  # only t1, kept from the SLM


def test_errors_say_what_to_do():
    with pytest.raises(MccomError, match="threshold in"):
        simulate(results(), "mccom", 1.5)
    with pytest.raises(MccomError, match="threshold in"):
        simulate(results(), "mccom")
    with pytest.raises(MccomError, match="unknown policy"):
        simulate(results(), "fastest")
    with pytest.raises(MccomError, match="accounting"):
        LatencyModel("lukewarm")
    with pytest.raises(MccomError, match="config_hash"):
        sweep(pd.concat([results(), results()]), [0.5])
    with pytest.raises(MccomError, match="no rows of branch"):
        sweep(results(), [0.5], branches=CascadeBranches(escalation="llm_rejected_repocoder"))
    with pytest.raises(MccomError, match="no branch rows"):
        sweep(pd.DataFrame(), [0.5])


def test_incomplete_tasks_are_left_out():
    df = results()
    df = df[~((df.task_id == "t4") & (df.branch == "llm"))]
    assert sweep(df, [0.5], policies=["always-llm"])["n"].tolist() == [3, 3]


# --------------------------------------------------------------------------- paper observations


def test_observations():
    df = results()
    assert verbatim_share(df) == 0.5  # t1 and t3 of four non-empty outputs
    df.loc[(df.task_id == "t4") & (df.branch == "slm"), "prediction"] = "  "
    assert verbatim_share(df) == pytest.approx(2 / 3)  # empty outputs are left out
    assert output_similarity(results()) == 0.25  # (a, a) identical; b/x, c/q, d/y share nothing
    assert output_similarity(results(), "llm", "llm_rejected") == pytest.approx(0.5)
    table = paper_comparison(results(), summary(results(), [0.0, 0.5, 1.0]), accounting="cold")
    assert table["metric"].tolist() == list(MCCOM_HEADLINES)
    got = dict(zip(table["metric"], table["measured"]))
    assert got["latency_vs_llm_pct"] == pytest.approx(-37.5)
    assert got["llm_calls_vs_llm_pct"] == pytest.approx(-50.0)
    assert got["slm_output_in_left_pct"] == 50.0 and got["slm_llm_es_pct"] == 25.0
    assert np.isclose(table["paper"], [-25.6, -46.3, 8.9, 14.4, 78.4]).all()
