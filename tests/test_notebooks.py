"""Every notebook executed through papermill, with assertions on the files it wrote.

Inputs are hand-made rows (``tests/notebook_helpers.py``) and tiny random checkpoints, so
each run takes seconds; the runs with the real models are marked ``slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mccom_core.lab.reproduce import discover
from tests.notebook_helpers import (
    TASKS, TOY_MODELS, cascade_rows, image_outputs, run_notebook, save_tiny_checkpoint, speculative_rows,
    write_jsonl,
)

OWN = {"01_quickstart", "02_observations", "03_cascade_tradeoffs", "04_speculative_decoding",
       "05_retrieval_ablation"}


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory) -> Path:
    return write_jsonl(cascade_rows(), tmp_path_factory.mktemp("rows") / "cascade_rows.jsonl")


def _dirs(tmp_path):
    return {"results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}


def _figures(tmp_path, prefix):
    return sorted(p.name for p in (tmp_path / "figures").glob(f"{prefix}_*"))


def test_every_notebook_has_a_test():
    assert OWN <= {p.stem for p in discover()}


def test_01_quickstart_with_tiny_checkpoints(tmp_path):
    slm = save_tiny_checkpoint(tmp_path / "slm", seed=0)
    llm = save_tiny_checkpoint(tmp_path / "llm", seed=1)
    out = run_notebook("01_quickstart", tmp_path, slm=str(slm), llm=str(llm), n_lines=2, device="cpu",
                       threshold=0.0, **_dirs(tmp_path))
    res = tmp_path / "results"
    frame = pd.read_csv(res / "quickstart.csv")
    assert len(frame) == 2 * 2 and list(frame["model"].unique()) == [str(slm), str(llm)]
    assert {"completion", "exact_match", "confidence", "prefill_ms", "decode_ms", "drafted", "accepted",
            "drafter"} <= set(frame.columns)
    assert frame["confidence"].between(0, 1).all() and (frame["accepted"] <= frame["drafted"]).all()
    trace = pd.read_csv(res / "trace.csv")
    assert len(trace) == 2 and (trace["answered_by"] == str(slm)).all()  # threshold 0: the SLM answers
    assert (trace["llm_prefill_ms"] == 0).all()
    assert _figures(tmp_path, "01") == ["01_latency_breakdown.png", "01_latency_breakdown.svg"]
    assert image_outputs(out) == 1  # the figure rendered inline, once


def test_02_observations_from_rows(tmp_path, rows_file):
    out = run_notebook("02_observations", tmp_path, cascade_rows=str(rows_file), compute=False, **TOY_MODELS,
                       **_dirs(tmp_path))
    obs = pd.read_csv(tmp_path / "results" / "observations.csv")
    assert list(obs["metric"]) == ["slm_output_in_left_pct", "slm_llm_es_pct", "slm_em_no_retrieval_pct",
                                   "slm_vs_llm_em_pct"]
    assert obs["paper"].tolist() == [14.4, 78.4, 37.8, 73.8]
    assert obs["measured"].between(0, 100).all() and (obs["n_tasks"] == len(TASKS)).all()
    assert obs.loc[0, "measured"] == pytest.approx(100 * 3 / 8)
    assert set(obs["slm"]) == {"toy-slm"} and set(obs["llm"]) == {"toy-llm"}
    branches = pd.read_csv(tmp_path / "results" / "branches.csv")
    assert len(branches) == 7 and branches["em"].between(0, 1).all()
    key = pd.read_csv(tmp_path / "results" / "key_numbers.csv")
    assert list(key.columns) == ["metric", "paper", "measured", "unit"] and len(key) == 4
    assert _figures(tmp_path, "02") == ["02_observations.png", "02_observations.svg"]
    assert image_outputs(out) == 1


def test_03_tradeoffs_table_sweep_and_explorer(tmp_path, rows_file):
    out = run_notebook("03_cascade_tradeoffs", tmp_path, cascade_rows=str(rows_file), compute=False, **TOY_MODELS,
                       threshold=0.6, **_dirs(tmp_path))
    res = tmp_path / "results"
    table = pd.read_csv(res / "policies.csv")
    assert len(table) == 6 * 2  # every policy, both accountings
    assert {"policy", "em", "es", "mean_ms", "p90_ms", "llm_share", "latency_vs_llm_pct"} <= set(table.columns)
    for col in ("em", "es", "llm_share"):
        assert table[col].between(0, 1).all()
    sweep = pd.read_csv(res / "sweep.csv")
    assert len(sweep) == 2 * (4 + 2 * 101)  # 4 fixed policies + 2 threshold policies x 101 thresholds
    explorer = pd.read_csv(res / "explorer_initial.csv")
    assert set(explorer["threshold"].dropna()) == {0.6} and set(explorer["accounting"]) == {"warm"}
    key = pd.read_csv(res / "key_numbers.csv")
    assert key["paper"].tolist() == [-25.6, -46.3, 8.9, 14.4, 78.4]
    assert _figures(tmp_path, "03") == ["03_latency_vs_em.png", "03_latency_vs_em.svg",
                                        "03_llm_share_vs_threshold.png", "03_llm_share_vs_threshold.svg"]
    assert image_outputs(out) == 2
    nb = json.loads(out.read_text())
    views = [o for c in nb["cells"] for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1  # the explorer


def test_04_speculative_from_rows(tmp_path):
    rows = write_jsonl(speculative_rows(), tmp_path / "speculative_rows.jsonl")
    out = run_notebook("04_speculative_decoding", tmp_path, speculative_rows=str(rows), **_dirs(tmp_path))
    res = tmp_path / "results"
    methods = pd.read_csv(res / "methods.csv")
    assert len(methods) == 3 * 3 + 2 * 4
    acc = pd.read_csv(res / "acceptance.csv")
    assert set(zip(acc["role"], acc["method"])) == {("slm", "stage1"), ("llm", "stage2"), ("llm", "stage2_context")}
    assert acc["acceptance"].between(0, 1).all()
    sp = pd.read_csv(res / "speedups.csv")
    assert {"decode_speedup", "total_speedup", "decode_p90_ms"} <= set(sp.columns) and len(sp) == 7
    assert len(pd.read_csv(res / "key_numbers.csv")) == 5 + 3
    assert len(_figures(tmp_path, "04")) == 2 * 4
    assert image_outputs(out) == 4


def test_05_retrieval_ablation_from_rows(tmp_path, rows_file):
    out = run_notebook("05_retrieval_ablation", tmp_path, cascade_rows=str(rows_file), compute=False, **TOY_MODELS,
                       **_dirs(tmp_path))
    ab = pd.read_csv(tmp_path / "results" / "ablation.csv")
    assert list(ab["setting"].unique()) == ["none", "round 1", "RepoCoder round 2", "fused round 2 (MCCom)"]
    assert (ab["n"] == len(TASKS)).all() and ab["em"].between(0, 1).all()
    cascade = pd.read_csv(tmp_path / "results" / "cascade_by_retrieval.csv")
    assert list(cascade["setting"]) == ["fused round 2 (MCCom)", "RepoCoder round 2", "no retrieval"]
    assert cascade["llm_share"].between(0, 1).all()
    # Hand-made task ids are not in the default benchmark: the fusion sweep has nothing to run on.
    assert pd.read_csv(tmp_path / "results" / "fusion_summary.csv").empty
    makeup = pd.read_csv(tmp_path / "results" / "block_makeup_summary.csv")  # nor the block makeup
    assert makeup.empty and "visible_left_share" in makeup.columns
    assert _figures(tmp_path, "05") == ["05_retrieval_ablation.png", "05_retrieval_ablation.svg"]
    assert image_outputs(out) == 1


@pytest.mark.slow
def test_01_quickstart_real_models(tmp_path):
    run_notebook("01_quickstart", tmp_path, n_lines=1, device="cpu", **_dirs(tmp_path))
    frame = pd.read_csv(tmp_path / "results" / "quickstart.csv")
    assert list(frame["model"]) == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert frame["confidence"].between(0, 1).all() and (frame["new_tokens"] > 0).all()


def test_06_self_testing_cascade_slot(tmp_path, monkeypatch):
    """The runner's slot for the self-testing cascade (its own issue): it runs on a few problems."""
    from mccom_core.lab.reproduce import _ladder_data_dir

    data = _ladder_data_dir()
    if not data or not Path(data).is_dir():
        pytest.skip("the shared recordings (code_cascading_wizardcoder) are not here")
    # a live ladder recorded by two tiny random models (the real run's layout), and a missing one
    from mccom_core.ladder.live import LiveConfig, run_live
    from tests.test_ladder_live import CONFIG, tiny_loaded

    live = tmp_path / "live" / "humaneval"
    with monkeypatch.context() as m:  # the tiny run's verdicts stay out of the shared execution cache
        m.setenv("MCCOM_CACHE_DIR", str(tmp_path / "cache"))
        run_live(LiveConfig(**{**CONFIG.__dict__, "problems": 5}), live, loader=lambda spec, device: tiny_loaded(spec))
    run_notebook("06_self_testing_cascade", tmp_path, data_dir=data, problems=10, seeds=[0],
                 live_dirs=[str(live), str(tmp_path / "no-live-run")], **_dirs(tmp_path))
    res = tmp_path / "results"
    pass1 = pd.read_csv(res / "pass_at_1.csv")
    assert list(pass1["model"]) == ["7B", "13B", "34B"] and (pass1["n_problems"] == 10).all()
    assert pass1[["greedy_pass@1", "sampled_pass@1"]].stack().between(0, 1).all()
    assert len(pd.read_csv(res / "savings.csv")) == 1  # one seed
    vs = pd.read_csv(res / "savings_vs_paper.csv")
    assert {"measure", "measured", "paper", "unit"} <= set(vs.columns) and len(vs) == 4
    side = pd.read_csv(res / "savings_by_theta.csv")  # both configurations, every theta and pooled
    assert side.groupby("configuration")["theta"].apply(list).to_dict() == {
        c: [f"{i / 10:.1f}" for i in range(11)] + ["all"] for c in ("authors", "project")}
    authors = pd.read_csv(res / "savings_authors.csv")
    assert (authors["seed"] == 7).all()
    assert vs["measured"].iloc[0] == pytest.approx(
        100 * authors.loc[authors["theta"] == "1.0", "authors_average_saving"].iloc[0])
    savings = pd.read_csv(res / "savings.csv")  # the comparison states the savings in percent
    assert vs.set_index("measure").loc["max saving", "measured"] == pytest.approx(100 * savings["max_saving"].max())
    assert (vs["unit"] == "%").all()
    live_vs = pd.read_csv(res / "live_vs_paper.csv")
    assert len(live_vs) == 2 and live_vs["measure"].str.startswith("live humaneval").all()
    assert (live_vs["unit"] == "%").all()
    assert len(pd.read_csv(res / "live_humaneval_savings.csv")) == 1
    assert not pd.read_csv(res / "live_humaneval_fronts.csv").duplicated(["seed", "theta", "plan"]).any()
    figs = _figures(tmp_path, "06")
    assert "06_fronts_test.png" in figs and "06_live_humaneval_fronts_test.png" in figs
    assert "06_savings_by_theta.png" in figs and "06_fronts_authors_test.png" in figs


def test_05_with_core_branches_only(tmp_path):
    """Rows without the ablation branches (e.g. a core-only run read with compute off)."""
    core = [r for r in cascade_rows() if r["branch"] in ("slm", "llm", "llm_rejected")]
    rows = write_jsonl(core, tmp_path / "core.jsonl")
    run_notebook("05_retrieval_ablation", tmp_path, cascade_rows=str(rows), compute=False, **TOY_MODELS,
                 **_dirs(tmp_path))
    ab = pd.read_csv(tmp_path / "results" / "ablation.csv")
    assert list(ab["setting"]) == ["round 1", "round 1", "fused round 2 (MCCom)"] and (ab["n"] == len(TASKS)).all()
    cascade = pd.read_csv(tmp_path / "results" / "cascade_by_retrieval.csv")
    assert list(cascade["setting"]) == ["fused round 2 (MCCom)"]


def test_06_without_the_authors_recordings(tmp_path):
    """The recordings are not shipped: without them 06 says where to get them and skips the replay."""
    import nbformat

    out = run_notebook("06_self_testing_cascade", tmp_path, data_dir=str(tmp_path / "absent"), live_dirs=[],
                       **_dirs(tmp_path))
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert "BoyuanJackChen/code_cascading_shared" in text and "f13952b0f97819dc282b02691836a13dcb2b0817" in text
    assert not (tmp_path / "results" / "pass_at_1.csv").exists()
    assert pd.read_csv(tmp_path / "results" / "live_vs_paper.csv").empty
    assert _figures(tmp_path, "06") == []


@pytest.mark.parametrize("script", discover(), ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(script):
    """papermill's line parser gives up on some comments (quotes in them) and then warns that the
    injected value is an "unknown parameter"; every declared parameter must survive it."""
    import jupytext
    from papermill.translators import PythonTranslator

    from mccom_core.lab.reproduce import declared_parameters

    nb = jupytext.read(script)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert [p.name for p in PythonTranslator.inspect(cell)] == declared_parameters(script)
