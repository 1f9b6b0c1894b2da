"""The notebooks' analyses: observations, retrieval ablation, quickstart trace."""

from __future__ import annotations

import pandas as pd
import pytest

from mccom_core.errors import MccomError
from mccom_core.papers import MCCOM_OBSERVATIONS
from mccom_core.lab.study import cascade_results, complete_tasks, observations, quickstart_trace, retrieval_ablation
from tests.notebook_helpers import cascade_rows, write_jsonl


def test_observations_exact():
    obs = observations(cascade_rows()).set_index("metric")
    assert list(obs.index) == list(MCCOM_OBSERVATIONS)
    assert obs.loc["slm_output_in_left_pct", "measured"] == pytest.approx(100 * 3 / 8)  # t1, t3, t7
    assert obs.loc["slm_em_no_retrieval_pct", "measured"] == pytest.approx(100 * 2 / 8)  # t3, t7
    # SLM right on t1 t3 t5 t7 (4/8); LLM right on all but t3 t8 (6/8).
    assert obs.loc["slm_vs_llm_em_pct", "measured"] == pytest.approx(100 * (4 / 8) / (6 / 8))
    assert obs.loc["slm_llm_es_pct", "paper"] == 78.4
    assert (obs["n_tasks"] == 8).all()


def test_observations_without_the_no_retrieval_branch():
    rows = [r for r in cascade_rows() if r["branch"] != "slm_noretrieval"]
    obs = observations(rows).set_index("metric")
    assert pd.isna(obs.loc["slm_em_no_retrieval_pct", "measured"])
    assert obs.loc["slm_em_no_retrieval_pct", "n_tasks"] == 0


def test_retrieval_ablation():
    ab = retrieval_ablation(cascade_rows()).set_index(["setting", "role"])
    assert list(ab.index) == [("none", "slm"), ("none", "llm"), ("round 1", "slm"), ("round 1", "llm"),
                              ("RepoCoder round 2", "llm"), ("fused round 2 (MCCom)", "llm")]
    assert ab.loc[("fused round 2 (MCCom)", "llm"), "em"] == pytest.approx(7 / 8)
    assert ab.loc[("RepoCoder round 2", "llm"), "em"] == pytest.approx(6 / 8)
    assert ab.loc[("none", "llm"), "em"] == pytest.approx(3 / 8)
    # slm t1: 8 retrieval + 120 prefill + 60 decode + 2 draft.
    assert ab.loc[("round 1", "slm"), "mean_ms"] == pytest.approx(8 + 2 + 60 + sum(120 + 10 * i for i in range(8)) / 8)
    # Only core branches stored: the settings without rows are left out.
    core = [r for r in cascade_rows() if r["branch"] in ("slm", "llm", "llm_rejected")]
    assert list(retrieval_ablation(core)["setting"].unique()) == ["round 1", "fused round 2 (MCCom)"]
    with pytest.raises(MccomError, match="with_ablations"):
        retrieval_ablation([r for r in cascade_rows() if r["branch"] == "llm_rejected_noretrieval"])


def test_retrieval_ablation_on_the_tasks_the_slm_missed():
    from mccom_core.lab.study import slm_missed_tasks

    assert slm_missed_tasks(cascade_rows()) == {"t2", "t4", "t6", "t8"}
    ab = retrieval_ablation(cascade_rows(), slm_missed=True).set_index(["setting", "role"])
    assert (ab["n"] == 4).all()
    assert ab.loc[("fused round 2 (MCCom)", "llm"), "em"] == pytest.approx(3 / 4)  # wrong on t8
    assert ab.loc[("RepoCoder round 2", "llm"), "em"] == pytest.approx(2 / 4)  # wrong on t4, t8
    assert ab.loc[("round 1", "slm"), "em"] == 0.0
    with pytest.raises(MccomError, match="'slm' rows"):
        retrieval_ablation([r for r in cascade_rows() if r["branch"] != "slm"], slm_missed=True)


def test_quickstart_trace():
    frame = pd.DataFrame([
        {"model": "small", "line": 3, "ground_truth": "a", "completion": "a", "exact_match": True,
         "confidence": 0.9, "prefill_ms": 10.0, "decode_ms": 5.0, "drafted": 4, "accepted": 3},
        {"model": "small", "line": 7, "ground_truth": "b", "completion": "c", "exact_match": False,
         "confidence": 0.2, "prefill_ms": 12.0, "decode_ms": 6.0, "drafted": 2, "accepted": 0},
        {"model": "big", "line": 3, "ground_truth": "a", "completion": "a", "exact_match": True,
         "confidence": 0.95, "prefill_ms": 40.0, "decode_ms": 20.0, "drafted": 1, "accepted": 1},
        {"model": "big", "line": 7, "ground_truth": "b", "completion": "b", "exact_match": True,
         "confidence": 0.7, "prefill_ms": 50.0, "decode_ms": 25.0, "drafted": 5, "accepted": 4},
    ])
    tr = quickstart_trace(frame, 0.5).set_index("line")
    assert list(tr["answered_by"]) == ["small", "big"]
    assert list(tr["shown"]) == ["a", "b"] and tr["exact_match"].all()
    assert tr.loc[3, "total_ms"] == 15.0 and tr.loc[7, "total_ms"] == 12 + 6 + 50 + 25
    assert (tr.loc[3, "llm_drafted"], tr.loc[7, "llm_drafted"], tr.loc[7, "llm_accepted"]) == (0, 5, 4)
    assert list(quickstart_trace(frame, 0.1)["answered_by"]) == ["small", "small"]
    with pytest.raises(MccomError, match="threshold"):
        quickstart_trace(frame, 1.5)
    with pytest.raises(MccomError, match="two models"):
        quickstart_trace(frame[frame.model == "small"], 0.5)


def test_cascade_results_read_only_returns_the_rows_of_the_requested_config(tmp_path):
    """compute=False on a file with rows of two configs: only those of (slm, llm)'s hash."""
    from mccom_core.cascade.engine import CascadeConfig, config_hash

    wanted = config_hash(CascadeConfig(slm="a-slm", llm="a-llm"))
    other = cascade_rows()  # 56 rows of the helpers' config
    assert {r["config_hash"] for r in other} != {wanted}
    ours = [{**other[0], "task_id": task, "branch": branch, "prediction": pred, "config_hash": wanted,
             "slm_spec": "a-slm", "llm_spec": "a-llm"}
            for task, branch, pred in [("t1", "slm", "return a"), ("t1", "llm", "return a + b"), ("t9", "slm", "x")]]
    path = write_jsonl(other[:28] + ours + other[28:], tmp_path / "rows.jsonl")
    rows = cascade_results(path, slm="a-slm", llm="a-llm", per_kind=1, compute=False)
    assert list(zip(rows["task_id"], rows["branch"], rows["prediction"])) == [
        ("t1", "slm", "return a"), ("t1", "llm", "return a + b"), ("t9", "slm", "x")]
    assert set(rows["config_hash"]) == {wanted}
    # The branches asked for do not change the config (config_hash leaves them out).
    assert len(cascade_results(path, slm="a-slm", llm="a-llm", per_kind=1, compute=False,
                               branches=("slm", "llm", "llm_rejected", "slm_noretrieval"))) == 3
    with pytest.raises(MccomError, match="compute=True") as err:
        cascade_results(path, slm="a-slm", llm="b-llm", per_kind=1, compute=False)
    message = str(err.value)
    assert config_hash(CascadeConfig(slm="a-slm", llm="b-llm")) in message
    assert f"('{wanted}', 'a-slm', 'a-llm')" in message and "point cascade_rows at a file" in message
    with pytest.raises(MccomError, match="compute=True"):
        cascade_results(tmp_path / "missing.jsonl", slm="x", llm="y", per_kind=1, compute=False)


def test_complete_tasks():
    rows = [r for r in cascade_rows() if not (r["task_id"] == "t2" and r["branch"] == "llm_rejected_repocoder")]
    kept = complete_tasks(rows, ["slm", "llm_rejected_repocoder"])
    assert sorted(kept["task_id"].unique()) == ["t1", "t3", "t4", "t5", "t6", "t7", "t8"]
    assert len(kept) == 7 * 7
    assert len(complete_tasks(rows, ["slm", "llm"])) == len(rows)


def test_paired_difference_exact():
    from mccom_core.lab.study import paired_difference

    rows = [{"task_id": f"t{i}", "branch": b, "em": em}
            for i, (fused, repo) in enumerate([(1, 0), (1, 1), (0, 0), (1, 0), (0, 1)])
            for b, em in (("llm_rejected", fused), ("llm_rejected_repocoder", repo))]
    rows.append({"task_id": "t9", "branch": "llm_rejected", "em": 1})  # no baseline row: left out
    out = paired_difference(rows, "llm_rejected", "llm_rejected_repocoder", n_boot=500, seed=1)
    assert (out["n"], out["wins"], out["losses"]) == (5, 2, 1)
    assert out["branch_mean"] == pytest.approx(0.6) and out["baseline_mean"] == pytest.approx(0.4)
    assert out["diff"] == pytest.approx(0.2)
    assert -1.0 <= out["lo"] <= out["diff"] <= out["hi"] <= 1.0
    assert paired_difference(rows, "llm_rejected", "llm_rejected_repocoder", n_boot=500, seed=1) == out
    with pytest.raises(MccomError, match="compute both"):
        paired_difference(rows, "llm_rejected", "llm")
    sub = paired_difference(rows, "llm_rejected", "llm_rejected_repocoder", tasks={"t0", "t4", "t9"}, n_boot=50)
    assert (sub["n"], sub["diff"], sub["wins"], sub["losses"]) == (2, 0.0, 1, 1)


def test_rows_computed_beside_committed_rows_go_to_build(tmp_path, monkeypatch):
    """A results file of the project outside build/ is read only; its mirror under build/rows/
    takes new rows, and both are read back (no duplicates); other files are resumed in place."""
    from mccom_core.lab import study

    root = tmp_path / "project"
    monkeypatch.setattr(study, "PROJECT_ROOT", root)
    monkeypatch.setattr(study, "BUILD_DIR", root / "build")
    committed = root / "benchmarks" / "results" / "rows.jsonl"
    assert study.new_rows_path(committed) == (root / "build" / "rows" / "benchmarks" / "results" / "rows.jsonl").resolve()
    assert study.new_rows_path(root / "build" / "x.jsonl") == (root / "build" / "x.jsonl").resolve()
    assert study.new_rows_path(tmp_path / "elsewhere.jsonl") == (tmp_path / "elsewhere.jsonl").resolve()

    rows = cascade_rows()
    first = {r["task_id"] for r in rows[: len(rows) // 2]}
    write_jsonl([r for r in rows if r["task_id"] in first], committed)
    # the mirror repeats one committed row (a rerun) and adds the rest
    repeated = next(r for r in rows if r["task_id"] in first)
    write_jsonl([repeated] + [r for r in rows if r["task_id"] not in first], study.new_rows_path(committed))
    got = cascade_results(committed, slm="toy-slm", llm="toy-llm", per_kind=10, compute=False)
    assert len(got) == len(rows)
    assert sorted(zip(got["task_id"], got["branch"])) == sorted((r["task_id"], r["branch"]) for r in rows)
